package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3embed"
)

const s3Usage = `serve [--addr 127.0.0.1:9000] [--dir DATA] [--bucket clozeloop] [--access-key ID --secret-key SECRET] [--json]
       clozeloop s3 ls [store flags] [--json] [PREFIX]
       clozeloop s3 put [store flags] [--json] KEY FILE
       clozeloop s3 get [store flags] [--json] KEY FILE
       clozeloop s3 upload-dir [store flags] [--json] DIR PREFIX
       clozeloop s3 download-dir [store flags] [--cache DIR] [--json] PREFIX

Store flags default to the CLOZELOOP_S3_* environment variables (ENDPOINT,
BUCKET, PREFIX, REGION, PATH_STYLE). Credentials are --credentials FILE (the
credentials.json that serve and dev keep in the S3 data folder), else
CLOZELOOP_S3_ACCESS_KEY_ID and CLOZELOOP_S3_SECRET_ACCESS_KEY, else the AWS
SDK's default chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, roles).

serve requires every request to be signed (AWS Signature V4) with its key
pair: --access-key/--secret-key (default: the CLOZELOOP_S3_ACCESS_KEY_ID and
CLOZELOOP_S3_SECRET_ACCESS_KEY variables), else the pair in DATA/credentials.json,
generated (mode 0600) on first start and reused afterwards.`

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
	fs := newFlagSet(env, "s3 serve", "[--addr ADDR] [--dir DATA] [--bucket NAME] [--access-key ID --secret-key SECRET] [--json]")
	addr := fs.String("addr", "127.0.0.1:9000", "loopback `address` to listen on (port 0 picks a free one)")
	dir := fs.String("dir", "clozeloop-data/s3", "data `folder` holding the objects (and credentials.json)")
	bucket := fs.String("bucket", s3embed.DefaultBucket, "bucket to create")
	accessKey := fs.String("access-key", os.Getenv(store.EnvAccessKeyID), "access key `id` clients must sign with (env "+store.EnvAccessKeyID+"; default: generated, in DATA/"+s3embed.CredentialsFile+")")
	secretKey := fs.String("secret-key", os.Getenv(store.EnvSecretAccessKey), "secret access `key` (env "+store.EnvSecretAccessKey+")")
	asJSON := fs.Bool("json", false, "print the endpoint and keys as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("s3 serve: unexpected arguments %q", fs.Args())
	}
	creds, credsFile, err := serverCredentials(*dir, *accessKey, *secretKey)
	if err != nil {
		return err
	}
	srv, err := s3embed.Start(ctx, *addr, *dir, s3embed.WithBucket(*bucket), s3embed.WithLogger(env.log), s3embed.WithCredentials(creds))
	if err != nil {
		return err
	}
	info := struct {
		Endpoint        string `json:"endpoint"`
		Bucket          string `json:"bucket"`
		Dir             string `json:"dir"`
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
		CredentialsFile string `json:"credentials_file,omitempty"`
	}{srv.Endpoint(), srv.Bucket(), srv.Dir(), creds.AccessKeyID, creds.SecretAccessKey, credsFile}
	if *asJSON {
		if err := writeJSON(env.stdout, info); err != nil {
			srv.Close()
			return err
		}
	} else {
		fmt.Fprintf(env.stdout, "serving S3 on %s (bucket %s, folder %s) until interrupted\n", info.Endpoint, info.Bucket, info.Dir)
		if credsFile != "" {
			fmt.Fprintf(env.stdout, "requests must be signed with the keys in %s\n", credsFile)
		}
		fmt.Fprintln(env.stdout)
		printS3Env(env.stdout, info.Endpoint, info.Bucket, creds)
	}
	select {
	case <-ctx.Done():
	case <-srv.Done():
	}
	return srv.Close()
}

// serverCredentials returns the key pair the embedded server requires: the
// given one (both parts or neither), else the one in dir's credentials file,
// created on first use. file is that file ("" for given keys).
func serverCredentials(dir, accessKey, secretKey string) (creds s3embed.Credentials, file string, err error) {
	if accessKey != "" || secretKey != "" {
		if accessKey == "" || secretKey == "" {
			return creds, "", usagef("give both --access-key and --secret-key (or %s and %s), or neither", store.EnvAccessKeyID, store.EnvSecretAccessKey)
		}
		creds = s3embed.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}
		if err := creds.Validate(); err != nil {
			return creds, "", usagef("embedded S3 keys: %v", err)
		}
		return creds, "", nil
	}
	file, err = filepath.Abs(filepath.Join(dir, s3embed.CredentialsFile))
	if err != nil {
		return creds, "", fmt.Errorf("embedded S3 keys: %w", err)
	}
	creds, _, err = s3embed.LoadOrCreateCredentials(file)
	return creds, file, err
}

// printS3Env prints how to reach an embedded S3 server from a shell: the
// clozeloop variables (for clozeloop s3 and workers) and the aws-cli ones.
func printS3Env(w io.Writer, endpoint, bucket string, creds s3embed.Credentials) {
	fmt.Fprintf(w, "  export %s=%s %s=%s %s=true \\\n    %s=%s %s=%s\n",
		store.EnvEndpoint, endpoint, store.EnvBucket, bucket, store.EnvPathStyle,
		store.EnvAccessKeyID, creds.AccessKeyID, store.EnvSecretAccessKey, creds.SecretAccessKey)
	fmt.Fprintf(w, "  aws-cli: AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s aws --endpoint-url %s --region %s s3 ls s3://%s/\n",
		creds.AccessKeyID, creds.SecretAccessKey, endpoint, s3embed.Region, bucket)
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
	credsFile := fs.String("credentials", "", "`file` with the embedded server's keys (DATA/s3/"+s3embed.CredentialsFile+"); default "+store.EnvAccessKeyID+"/"+store.EnvSecretAccessKey+", else the AWS default chain")
	return func(ctx context.Context, env *cmdEnv) (*store.Store, error) {
		c := cfg
		if *credsFile != "" {
			creds, err := s3embed.ReadCredentials(*credsFile)
			if err != nil {
				return nil, err
			}
			c.AccessKeyID, c.SecretAccessKey = creds.AccessKeyID, creds.SecretAccessKey
		}
		if c.AccessKeyID == "" && isLoopbackEndpoint(c.Endpoint) && os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
			return nil, usagef("the embedded S3 server at %s needs its keys: pass --credentials DATA/s3/%s or set %s and %s (clozeloop dev and s3 serve print them)",
				c.Endpoint, s3embed.CredentialsFile, store.EnvAccessKeyID, store.EnvSecretAccessKey)
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
