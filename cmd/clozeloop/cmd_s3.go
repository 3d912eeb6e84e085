package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3embed"
)

const s3Usage = `serve [--addr 127.0.0.1:9000] [--dir DATA] [--bucket clozeloop] [--json]
       clozeloop s3 ls [store flags] [--json] [PREFIX]
       clozeloop s3 put [store flags] [--json] KEY FILE
       clozeloop s3 get [store flags] [--json] KEY FILE
       clozeloop s3 upload-dir [store flags] [--json] DIR PREFIX
       clozeloop s3 download-dir [store flags] [--cache DIR] [--json] PREFIX

Store flags default to the CLOZELOOP_S3_* environment variables (ENDPOINT,
BUCKET, PREFIX, REGION, PATH_STYLE); credentials come from the AWS SDK's
default chain, or the embedded server's fixed ones for a loopback endpoint
when AWS_ACCESS_KEY_ID is unset.`

func s3Cmd() command {
	return command{
		name:    "s3",
		summary: "serve the embedded S3-compatible store; list, put and get objects and checkpoints",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
				fmt.Fprintf(env.stderr, "Usage: clozeloop s3 %s\n", s3Usage)
				if len(args) == 0 {
					return usagef("missing subcommand")
				}
				return flag.ErrHelp
			}
			switch args[0] {
			case "serve":
				return s3Serve(ctx, env, args[1:])
			case "ls":
				return s3Ls(ctx, env, args[1:])
			case "put":
				return s3Put(ctx, env, args[1:])
			case "get":
				return s3Get(ctx, env, args[1:])
			case "upload-dir":
				return s3UploadDir(ctx, env, args[1:])
			case "download-dir":
				return s3DownloadDir(ctx, env, args[1:])
			}
			return usagef("s3: unknown subcommand %q (want serve, ls, put, get, upload-dir or download-dir)", args[0])
		},
	}
}

func s3Serve(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "s3 serve", "[--addr ADDR] [--dir DATA] [--bucket NAME] [--json]")
	addr := fs.String("addr", "127.0.0.1:9000", "loopback `address` to listen on (port 0 picks a free one)")
	dir := fs.String("dir", "clozeloop-data/s3", "data `folder` holding the objects")
	bucket := fs.String("bucket", s3embed.DefaultBucket, "bucket to create")
	asJSON := fs.Bool("json", false, "print the endpoint as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("s3 serve: unexpected arguments %q", fs.Args())
	}
	srv, err := s3embed.Start(ctx, *addr, *dir, s3embed.WithBucket(*bucket), s3embed.WithLogger(env.log))
	if err != nil {
		return err
	}
	info := struct {
		Endpoint string `json:"endpoint"`
		Bucket   string `json:"bucket"`
		Dir      string `json:"dir"`
	}{srv.Endpoint(), srv.Bucket(), srv.Dir()}
	if *asJSON {
		if err := writeJSON(env.stdout, info); err != nil {
			srv.Close()
			return err
		}
	} else {
		fmt.Fprintf(env.stdout, "serving S3 on %s (bucket %s, folder %s) until interrupted\n\n", info.Endpoint, info.Bucket, info.Dir)
		fmt.Fprintf(env.stdout, "  export %s=%s %s=%s %s=true\n", store.EnvEndpoint, info.Endpoint, store.EnvBucket, info.Bucket, store.EnvPathStyle)
	}
	select {
	case <-ctx.Done():
	case <-srv.Done():
	}
	return srv.Close()
}

// storeFlags registers the store flags on fs, defaulting to the environment.
func storeFlags(fs *flag.FlagSet) (func(ctx context.Context, env *cmdEnv) (*store.Store, error), error) {
	cfg, err := store.ConfigFromEnv()
	if err != nil {
		return nil, usagef("%v", err)
	}
	fs.StringVar(&cfg.Endpoint, "endpoint", cfg.Endpoint, "S3 endpoint `URL`; empty means AWS S3 ("+store.EnvEndpoint+")")
	fs.StringVar(&cfg.Bucket, "bucket", cfg.Bucket, "bucket `name` ("+store.EnvBucket+")")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "key `prefix` inside the bucket ("+store.EnvPrefix+")")
	fs.StringVar(&cfg.Region, "region", cfg.Region, "signing `region` ("+store.EnvRegion+")")
	fs.BoolVar(&cfg.PathStyle, "path-style", cfg.PathStyle, "use path-style URLs ("+store.EnvPathStyle+")")
	return func(ctx context.Context, env *cmdEnv) (*store.Store, error) {
		c := cfg
		if isLoopbackEndpoint(c.Endpoint) && os.Getenv("AWS_ACCESS_KEY_ID") == "" {
			c.AccessKeyID, c.SecretAccessKey = s3embed.AccessKeyID, s3embed.SecretAccessKey
		}
		return store.Open(ctx, c, env.log)
	}, nil
}

func isLoopbackEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || endpoint == "" {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

func s3Ls(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "s3 ls", "[store flags] [--json] [PREFIX]")
	open, err := storeFlags(fs)
	if err != nil {
		return err
	}
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("s3 ls: want at most one PREFIX")
	}
	st, err := open(ctx, env)
	if err != nil {
		return err
	}
	objs, err := st.List(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		if objs == nil {
			objs = []store.ObjectInfo{}
		}
		return writeJSON(env.stdout, objs)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, o := range objs {
		fmt.Fprintf(tw, "%d\t%s\t %s\n", o.Size, o.LastModified.Format("2006-01-02 15:04:05"), o.Key)
	}
	return tw.Flush()
}

func s3Put(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "s3 put", "[store flags] [--json] KEY FILE")
	open, err := storeFlags(fs)
	if err != nil {
		return err
	}
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("s3 put: want KEY FILE")
	}
	st, err := open(ctx, env)
	if err != nil {
		return err
	}
	res, err := st.PutFile(ctx, fs.Arg(0), fs.Arg(1))
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, res)
	}
	verb := "uploaded"
	if res.Skipped {
		verb = "unchanged"
	}
	fmt.Fprintf(env.stdout, "%s %s (%d bytes, sha256 %s)\n", verb, res.Key, res.Size, res.SHA256)
	return nil
}

func s3Get(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "s3 get", "[store flags] [--json] KEY FILE")
	open, err := storeFlags(fs)
	if err != nil {
		return err
	}
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("s3 get: want KEY FILE")
	}
	st, err := open(ctx, env)
	if err != nil {
		return err
	}
	info, err := st.GetFile(ctx, fs.Arg(0), fs.Arg(1))
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, info)
	}
	fmt.Fprintf(env.stdout, "downloaded %s to %s (%d bytes, sha256 %s verified)\n", info.Key, fs.Arg(1), info.Size, info.SHA256)
	return nil
}

func s3UploadDir(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "s3 upload-dir", "[store flags] [--json] DIR PREFIX")
	open, err := storeFlags(fs)
	if err != nil {
		return err
	}
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("s3 upload-dir: want DIR PREFIX")
	}
	st, err := open(ctx, env)
	if err != nil {
		return err
	}
	m, sum, err := st.UploadDir(ctx, fs.Arg(0), fs.Arg(1))
	if err != nil {
		return err
	}
	out := struct {
		Prefix         string         `json:"prefix"`
		ManifestSHA256 string         `json:"manifest_sha256"`
		Manifest       store.Manifest `json:"manifest"`
	}{fs.Arg(1), sum, m}
	if *asJSON {
		return writeJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "uploaded %d files (%d bytes) to %s, manifest sha256 %s\n", len(m.Files), m.Size(), fs.Arg(1), sum)
	return nil
}

func s3DownloadDir(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "s3 download-dir", "[store flags] [--cache DIR] [--json] PREFIX")
	open, err := storeFlags(fs)
	if err != nil {
		return err
	}
	cache := fs.String("cache", "clozeloop-data/cache", "local cache `folder`")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("s3 download-dir: want PREFIX")
	}
	st, err := open(ctx, env)
	if err != nil {
		return err
	}
	dir, m, err := st.DownloadDir(ctx, fs.Arg(0), *cache)
	if err != nil {
		return err
	}
	out := struct {
		Dir   string `json:"dir"`
		Files int    `json:"files"`
		Bytes int64  `json:"bytes"`
	}{dir, len(m.Files), m.Size()}
	if *asJSON {
		return writeJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "%s (%d files, %d bytes)\n", dir, out.Files, out.Bytes)
	return nil
}
