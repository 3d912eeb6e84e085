package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/clozeloop/clozeloop/hfhub"
)

func modelCmd() command {
	return command{
		name:    "model",
		summary: "pull Hugging Face Hub models into the shared cache (pull) and list the cache (ls)",
		run:     runModel,
	}
}

const modelUsage = `clozeloop model pull REF [--json]   download a fill-mask model (hf://org/name[@revision]) into the Hugging Face cache
clozeloop model ls [--json]         list the cached models: revision → commit, files, sizes

The cache is the one transformers uses (HF_HUB_CACHE, else HF_HOME/hub, else
~/.cache/huggingface/hub); HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE are read as
the Python client reads them.`

func runModel(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(env.stderr, "Usage:\n  "+strings.ReplaceAll(modelUsage, "\nclozeloop", "\n  clozeloop"))
		if len(args) == 0 {
			return usagef("model: want pull or ls")
		}
		return nil
	}
	switch args[0] {
	case "pull":
		return runModelPull(ctx, env, args[1:])
	case "ls", "list":
		return runModelList(env, args[1:])
	}
	return usagef("model: unknown subcommand %q (want pull or ls)", args[0])
}

// pullReport is what model pull prints with --json.
type pullReport struct {
	Ref        string   `json:"ref"`
	Repo       string   `json:"repo"`
	Revision   string   `json:"revision"`
	Commit     string   `json:"commit"`
	Dir        string   `json:"dir"`
	Files      []string `json:"files"`
	Downloaded int64    `json:"downloaded_bytes"`
	Offline    bool     `json:"offline"`
}

func runModelPull(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "model pull", "REF [--json]\n\nREF is hf://org/name[@revision] (or org/name[@revision]); the revision is a branch, tag or commit (default main).")
	asJSON := fs.Bool("json", false, "print JSON")
	// Accept the flag after the reference too.
	var refs []string
	rest := args
	for {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		refs = append(refs, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(refs) != 1 {
		return usagef("model pull: want exactly one reference, got %d", len(refs))
	}
	ref, err := hfhub.ParseRef(refs[0])
	if err != nil {
		return usageError{err}
	}
	c, bar, err := newHubClient(env)
	if err != nil {
		return err
	}
	snap, err := c.Pull(ctx, ref)
	bar.done()
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	rep := pullReport{Ref: ref.String(), Repo: ref.Repo, Revision: ref.Revision, Commit: snap.Commit, Dir: snap.Dir,
		Files: snap.Files, Downloaded: snap.Downloaded, Offline: c.Config().Offline}
	if *asJSON {
		return writeJSON(env.stdout, rep)
	}
	fmt.Fprintf(env.stdout, "%s → commit %s\n%s (%s downloaded)\n", ref, snap.Commit, snap.Dir, humanBytes(snap.Downloaded))
	return nil
}

func runModelList(env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "model ls", "[--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	cfg, err := hfhub.ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	models, err := hfhub.New(cfg).List()
	if err != nil {
		return err
	}
	if *asJSON {
		if models == nil {
			models = []hfhub.CachedModel{}
		}
		return writeJSON(env.stdout, map[string]any{"cache": cfg.CacheDir, "models": models})
	}
	fmt.Fprintf(env.stdout, "cache %s\n", cfg.CacheDir)
	if len(models) == 0 {
		fmt.Fprintln(env.stdout, "no models")
	}
	for _, m := range models {
		fmt.Fprintf(env.stdout, "\nhf://%s  %s", m.Repo, humanBytes(m.Bytes))
		if m.IncompleteBytes > 0 {
			fmt.Fprintf(env.stdout, " (+%s unfinished)", humanBytes(m.IncompleteBytes))
		}
		fmt.Fprintln(env.stdout)
		for _, rev := range slices.Sorted(maps.Keys(m.Refs)) {
			fmt.Fprintf(env.stdout, "  %-12s → %s\n", rev, m.Refs[rev])
		}
		for _, s := range m.Snapshots {
			state := "complete"
			if !s.Complete {
				state = "incomplete"
			}
			fmt.Fprintf(env.stdout, "  %s  %d files  %s  %s\n", s.Commit, len(s.Files), humanBytes(s.Bytes), state)
		}
	}
	return nil
}

// newHubClient reads the Hub settings from the environment and returns a
// client that draws its download progress on env.stderr.
func newHubClient(env *cmdEnv) (*hfhub.Client, *byteBar, error) {
	cfg, err := hfhub.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	bar := &byteBar{w: env.stderr}
	return hfhub.New(cfg, hfhub.WithProgress(bar.update)), bar, nil
}

// resolveModel turns what a user typed where a model is named into a local
// folder: a Hub reference hf://org/name[@revision] is resolved through the
// Hugging Face cache (downloading what is missing, unless HF_HUB_OFFLINE);
// an existing local path is used as it is; a bare org/name[@revision] that
// is not a local path is tried on the Hub. commit is the resolved Hub
// commit ("" for a local folder).
func resolveModel(ctx context.Context, env *cmdEnv, model string) (dir, commit string, err error) {
	if model == "" {
		return "", "", nil
	}
	bare := false
	if !hfhub.IsRef(model) {
		if _, err := os.Stat(model); err == nil || !errors.Is(err, os.ErrNotExist) || !hfhub.LooksLikeRepo(model) {
			return model, "", nil
		}
		bare = true
	}
	ref, err := hfhub.ParseRef(model)
	if err != nil {
		return "", "", usageError{err}
	}
	c, bar, err := newHubClient(env)
	if err != nil {
		return "", "", err
	}
	snap, err := c.Resolve(ctx, ref)
	bar.done()
	if err != nil {
		if bare {
			return "", "", fmt.Errorf("model %s: no such local folder, and on the Hub: %w", model, err)
		}
		return "", "", err // it names the reference
	}
	env.log.Info("hub model", "ref", ref.String(), "commit", snap.Commit, "dir", snap.Dir, "cached", snap.Cached, "downloaded_bytes", snap.Downloaded)
	return snap.Dir, snap.Commit, nil
}

// byteBar draws a one-line download progress bar with \r.
type byteBar struct {
	w     io.Writer
	file  string
	start time.Time
	last  time.Time
	drawn bool
}

func (b *byteBar) update(p hfhub.Progress) {
	now := time.Now()
	if p.File != b.file {
		if b.drawn {
			fmt.Fprintln(b.w)
		}
		b.file, b.start = p.File, now
	} else if p.Done < p.Total && now.Sub(b.last) < 200*time.Millisecond {
		return
	}
	b.last = now
	const width = 30
	filled := width
	if p.Total > 0 {
		filled = int(int64(width) * min(p.Done, p.Total) / p.Total)
	}
	rate := float64(p.Done) / max(now.Sub(b.start).Seconds(), 1e-3)
	fmt.Fprintf(b.w, "\r%s %s/%s [%s%s] %s/s ", p.File, humanBytes(p.Done), humanBytes(p.Total),
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), humanBytes(int64(rate)))
	b.drawn = true
}

// done ends the bar's line.
func (b *byteBar) done() {
	if b != nil && b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

// humanBytes writes n as B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i])
}
