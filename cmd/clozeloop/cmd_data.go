package main

import (
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/clozeloop/clozeloop/dataset"
)

const dataUsage = `build wordnet --out DIR [flags]
       clozeloop data build text --in FILE --out DIR [flags]
       clozeloop data build supersense --out DIR [flags]
       clozeloop data build mixed --main DIR --target DIR --out DIR [--target-share 0.1] [flags]
       clozeloop data build labelled --in FILE --out DIR [--eval-fraction 0.1] [--seed 1] [flags]
       clozeloop data import FILE --out DIR [--kind K] [--skip-invalid] [--pool FILE] [--min-context N] [--json]
       clozeloop data validate FILE [--kind K] [--skip-invalid] [--pool FILE] [--min-context N] [--json]
       clozeloop data stats FILE [--kind K] [--top N] [--json]`

func dataCmd() command {
	return command{
		name:    "data",
		summary: "build cloze datasets (WordNet, raw text, WordNet supersenses, mixed pools); import, validate and describe JSONL files",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
				fmt.Fprintf(env.stderr, "Usage: clozeloop data %s\n\nRun 'clozeloop data <subcommand> -h' for flags. The JSONL format is described in docs/DATA.md.\n", dataUsage)
				if len(args) == 0 {
					return usagef("missing subcommand")
				}
				return flag.ErrHelp
			}
			switch args[0] {
			case "build":
				if len(args) < 2 {
					return usagef("data build: want wordnet, text, supersense, mixed or labelled")
				}
				switch args[1] {
				case "wordnet":
					return dataBuildWordNet(ctx, env, args[2:])
				case "text":
					return dataBuildText(ctx, env, args[2:])
				case "supersense":
					return dataBuildSupersense(ctx, env, args[2:])
				case "mixed":
					return dataBuildMixed(ctx, env, args[2:])
				case "labelled":
					return dataBuildLabelled(ctx, env, args[2:])
				}
				return usagef("data build: unknown source %q (want wordnet, text, supersense, mixed or labelled)", args[1])
			case "import":
				return dataImport(ctx, env, args[1:])
			case "validate":
				return dataValidate(ctx, env, args[1:])
			case "stats":
				return dataStats(ctx, env, args[1:])
			}
			return usagef("data: unknown subcommand %q (want build, import, validate or stats)", args[0])
		},
	}
}

// parseInterspersed parses flags that may come before or after positional
// arguments and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// splitFlags registers the split flags shared by the builders. Call
// checkSplit after parsing.
func splitFlags(fs *flag.FlagSet) *dataset.SplitOptions {
	s := &dataset.SplitOptions{}
	fs.Float64Var(&s.EvalFraction, "eval-fraction", dataset.DefaultEvalFraction, "share of sentences (by hash) in the eval split; negative for none")
	fs.Int64Var(&s.Seed, "seed", 1, "split seed")
	fs.IntVar(&s.MaxMasks, "max-masks", 0, "drop items with more masks (0: no limit)")
	minContextFlag(fs, &s.MinContext, "drop items with fewer context words (words other than the blanks, docs/DATA.md); 0: keep all")
	return s
}

// minContextFlag registers --min-context with the default minimum.
func minContextFlag(fs *flag.FlagSet, p *int, usage string) {
	fs.IntVar(p, "min-context", dataset.DefaultMinContext, usage)
}

// resolveMinContext turns the --min-context flag value into the dataset
// options' convention (0 there means the default, negative none).
func resolveMinContext(n int) (int, error) {
	switch {
	case n < 0:
		return 0, usagef("--min-context must not be negative")
	case n == 0:
		return -1, nil
	}
	return n, nil
}

// checkSplit validates the split flags after parsing.
func checkSplit(s *dataset.SplitOptions) error {
	if s.MaxMasks < 0 {
		return usagef("--max-masks must not be negative")
	}
	n, err := resolveMinContext(s.MinContext)
	if err != nil {
		return err
	}
	s.MinContext = n
	return nil
}

func printBuild(env *cmdEnv, out string, st *dataset.BuildStats, asJSON bool) error {
	if asJSON {
		return writeJSON(env.stdout, struct {
			Out string `json:"out"`
			*dataset.BuildStats
		}{out, st})
	}
	w := env.stdout
	fmt.Fprintf(w, "source       %s\n", st.Source)
	fmt.Fprintf(w, "sentences    %d\n", st.Sentences)
	fmt.Fprintf(w, "no mask      %d\n", st.NoMask)
	fmt.Fprintf(w, "duplicates   %d\n", st.Duplicates)
	if st.TooManyMasks > 0 {
		fmt.Fprintf(w, "too many     %d\n", st.TooManyMasks)
	}
	if st.MinContext > 0 {
		fmt.Fprintf(w, "too little   %d  (fewer than %d context words)\n", st.TooLittleContext, st.MinContext)
	}
	if ss := st.Supersense; ss != nil {
		fmt.Fprintf(w, "synsets      %d noun and verb, %d in pool, %d in eval\n", ss.Synsets, ss.PoolSynsets, ss.EvalSynsets)
		fmt.Fprintf(w, "no class     %d  (noun.Tops examples)\n", ss.NoClass)
		fmt.Fprintf(w, "shared       %d  (pool examples that are also an eval synset's)\n", ss.SharedWithEval)
		fmt.Fprintf(w, "classes      %s\n", countList(ss.PoolByClass))
	}
	if ms := st.Mixed; ms != nil {
		fmt.Fprintf(w, "pool source  %s  (of %d %s and %d %s available)\n", countList(ms.PoolBySource), ms.MainAvailable, ms.MainSource, ms.TargetAvailable, ms.TargetSource)
	}
	fmt.Fprintf(w, "pool         %d  %s/%s (answers in %s)\n", st.Pool, out, dataset.PoolFile, dataset.OracleFile)
	fmt.Fprintf(w, "eval         %d  %s/%s\n", st.Eval, out, dataset.EvalFile)
	fmt.Fprintf(w, "raw lines    %d  %s/%s\n", st.RawLines, out, dataset.RawFile)
	keys := make([]string, 0, len(st.MasksPerItem))
	for k := range st.MasksPerItem {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return len(keys[i]) < len(keys[j]) || len(keys[i]) == len(keys[j]) && keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, st.MasksPerItem[k])
	}
	fmt.Fprintf(w, "masks/item   %s\n", strings.Join(parts, " "))
	fmt.Fprintf(w, "stats        %s/%s\n", out, dataset.StatsFile)
	return nil
}

// countList prints a count map as "key:n …", largest first.
func countList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func dataBuildWordNet(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "data build wordnet", "--out DIR [flags]")
	out := fs.String("out", "", "output folder (required)")
	dir := fs.String("wordnet-dir", dataset.DefaultWordNetDir, "folder with WordNet's data.* and *.exc files (Debian package wordnet-base)")
	asJSON := fs.Bool("json", false, "print JSON")
	split := splitFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *out == "" || len(pos) > 0 {
		return usagef("data build wordnet: want --out DIR and no arguments")
	}
	if err := checkSplit(split); err != nil {
		return err
	}
	env.log.Info("building WordNet cloze set", "wordnet", *dir, "out", *out)
	st, err := dataset.BuildWordNet(ctx, dataset.WordNetOptions{Dir: *dir, Out: *out, Split: *split})
	if err != nil {
		return fmt.Errorf("build WordNet cloze set: %w", err)
	}
	return printBuild(env, *out, st, *asJSON)
}

// openCorpus opens a text file, decompressing .gz and .dz (dictzip) files.
func openCorpus(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".gz") && !strings.HasSuffix(path, ".dz") {
		return f, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("decompress %s: %w", path, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

func dataBuildText(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "data build text", "--in FILE --out DIR [flags]")
	in := fs.String("in", "", "UTF-8 text file (.gz and .dz are decompressed) (required)")
	out := fs.String("out", "", "output folder (required)")
	name := fs.String("name", "", "corpus name for stats and meta (default: the file name)")
	strip := fs.Bool("strip-line-numbers", false, "remove a leading number from each line (verse or line numbers)")
	minWords := fs.Int("min-words", 5, "shortest sentence kept, in words")
	maxWords := fs.Int("max-words", 50, "longest sentence kept, in words")
	skipTop := fs.Int("skip-top", 100, "never mask the N most frequent words")
	minCount := fs.Int("min-count", 3, "never mask words seen fewer times")
	asJSON := fs.Bool("json", false, "print JSON")
	split := splitFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *in == "" || *out == "" || len(pos) > 0 {
		return usagef("data build text: want --in FILE --out DIR and no arguments")
	}
	if *minWords < 1 || *maxWords < *minWords || *skipTop < 0 || *minCount < 1 {
		return usagef("data build text: want 1 <= --min-words <= --max-words, --skip-top >= 0, --min-count >= 1")
	}
	if err := checkSplit(split); err != nil {
		return err
	}
	if *name == "" {
		*name = *in
	}
	opts := dataset.TextOptions{
		Open:             func() (io.ReadCloser, error) { return openCorpus(*in) },
		Name:             *name,
		Out:              *out,
		StripLineNumbers: *strip,
		MinWords:         *minWords,
		MaxWords:         *maxWords,
		Frequency:        dataset.FrequencyOptions{SkipTop: *skipTop, MinCount: *minCount, Seed: split.Seed},
		Split:            *split,
	}
	if *skipTop == 0 {
		opts.Frequency.SkipTop = -1
	}
	env.log.Info("building cloze set from text", "in", *in, "out", *out)
	st, err := dataset.BuildText(ctx, opts)
	if err != nil {
		return fmt.Errorf("build cloze set from %s: %w", *in, err)
	}
	return printBuild(env, *out, st, *asJSON)
}

func dataBuildSupersense(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "data build supersense", "--out DIR [flags]")
	out := fs.String("out", "", "output folder (required)")
	dir := fs.String("wordnet-dir", dataset.DefaultWordNetDir, "folder with WordNet's data.noun, data.verb and *.exc files (Debian package wordnet-base)")
	asJSON := fs.Bool("json", false, "print JSON")
	split := &dataset.SplitOptions{}
	fs.Float64Var(&split.EvalFraction, "eval-fraction", dataset.DefaultEvalFraction, "share of synsets (by hash) in the eval split; negative for none")
	fs.Int64Var(&split.Seed, "seed", 1, "split seed")
	minContextFlag(fs, &split.MinContext, "drop examples with fewer context words besides the lemma (docs/DATA.md); 0: keep all")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *out == "" || len(pos) > 0 {
		return usagef("data build supersense: want --out DIR and no arguments")
	}
	if err := checkSplit(split); err != nil {
		return err
	}
	env.log.Info("building WordNet supersense set", "wordnet", *dir, "out", *out)
	st, err := dataset.BuildSupersense(ctx, dataset.SupersenseOptions{Dir: *dir, Out: *out, Split: *split})
	if err != nil {
		return fmt.Errorf("build WordNet supersense set: %w", err)
	}
	return printBuild(env, *out, st, *asJSON)
}

func dataBuildMixed(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "data build mixed", "--main DIR --target DIR --out DIR [flags]")
	o := dataset.MixedOptions{}
	fs.StringVar(&o.Main, "main", "", "data folder whose pool makes most of the mixed pool, e.g. data/wordnet (required)")
	fs.StringVar(&o.Target, "target", "", "data folder of the target task: a minority of its pool, all of its eval set, e.g. data/kjv (required)")
	fs.StringVar(&o.Out, "out", "", "output folder (required)")
	fs.Float64Var(&o.TargetShare, "target-share", 0.1, "the target's share of the mixed pool, in (0, 1)")
	fs.IntVar(&o.MainLimit, "main-limit", 0, "keep at most this many main pool items, sampled (0: all)")
	fs.StringVar(&o.MainSource, "main-source", "", "source name of the main items (default: the folder's base name)")
	fs.StringVar(&o.TargetSource, "target-source", "", "source name of the target items (default: the folder's base name)")
	fs.Int64Var(&o.Seed, "seed", 1, "sampling and order seed")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if o.Main == "" || o.Target == "" || o.Out == "" || len(pos) > 0 {
		return usagef("data build mixed: want --main DIR --target DIR --out DIR and no arguments")
	}
	if !(o.TargetShare > 0 && o.TargetShare < 1) || o.MainLimit < 0 {
		return usagef("data build mixed: want 0 < --target-share < 1 and --main-limit >= 0")
	}
	env.log.Info("building mixed pool", "main", o.Main, "target", o.Target, "out", o.Out, "target_share", o.TargetShare)
	st, err := dataset.BuildMixed(ctx, o)
	if err != nil {
		return fmt.Errorf("build mixed pool: %w", err)
	}
	return printBuild(env, o.Out, st, *asJSON)
}

func dataBuildLabelled(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "data build labelled", "--in FILE --out DIR [flags]")
	o := dataset.LabelledOptions{}
	fs.StringVar(&o.In, "in", "", "JSONL file of answered items, eval format (id, text, gold[, meta]) (required)")
	fs.StringVar(&o.Out, "out", "", "output folder (required)")
	fs.StringVar(&o.Name, "name", "", "source name for stats (default: the file name)")
	asJSON := fs.Bool("json", false, "print JSON")
	split := splitFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if o.In == "" || o.Out == "" || len(pos) > 0 {
		return usagef("data build labelled: want --in FILE --out DIR and no arguments")
	}
	if err := checkSplit(split); err != nil {
		return err
	}
	o.Split = *split
	env.log.Info("building from answered items", "in", o.In, "out", o.Out, "eval_fraction", split.EvalFraction, "seed", split.Seed)
	st, err := dataset.BuildLabelled(ctx, o)
	if err != nil {
		return err
	}
	return printBuild(env, o.Out, st, *asJSON)
}

// recordFlags registers the flags shared by import and validate.
func recordFlags(fs *flag.FlagSet) (kind, pool *string, skip *bool, minCtx *int) {
	kind = fs.String("kind", "", "record kind: pool, labels or eval (default: detected from the first line)")
	pool = fs.String("pool", "", "for labels: pool file to check item ids and answer counts against")
	skip = fs.Bool("skip-invalid", false, "keep going past invalid lines and report how many were skipped")
	minCtx = new(int)
	minContextFlag(fs, minCtx, "warn about pool and eval items with fewer context words (words other than the blanks); 0: no warning")
	return kind, pool, skip, minCtx
}

func validateOptions(kind, pool string, skip bool, minCtx int) (dataset.ValidateOptions, error) {
	o := dataset.ValidateOptions{SkipInvalid: skip}
	n, err := resolveMinContext(minCtx)
	if err != nil {
		return o, err
	}
	o.MinContext = n
	if kind != "" {
		k, err := dataset.ParseKind(kind)
		if err != nil {
			return o, usageError{err}
		}
		o.Kind = k
	}
	if pool != "" {
		f, err := os.Open(pool)
		if err != nil {
			return o, fmt.Errorf("open pool: %w", err)
		}
		defer f.Close()
		idx, err := dataset.NewPoolIndex(f, pool)
		if err != nil {
			return o, err
		}
		o.Pool = idx
	}
	return o, nil
}

func printResult(env *cmdEnv, verb string, res *dataset.Result, asJSON bool) error {
	if asJSON {
		return writeJSON(env.stdout, res)
	}
	fmt.Fprintf(env.stdout, "%s %s (%s): %d valid record(s), %d invalid line(s) skipped\n", verb, res.File, res.Kind, res.Records, res.Skipped)
	for _, le := range res.Invalid {
		fmt.Fprintf(env.stdout, "  %v\n", le)
	}
	if res.Skipped > len(res.Invalid) {
		fmt.Fprintf(env.stdout, "  … and %d more\n", res.Skipped-len(res.Invalid))
	}
	if res.LowContext > 0 {
		fmt.Fprintf(env.stdout, "warning: %d item(s) with fewer than %d context words (words other than the blanks): hard or impossible to answer; the builders drop such items (--min-context)\n", res.LowContext, res.MinContext)
		for _, lc := range res.LowContextFirst {
			fmt.Fprintf(env.stdout, "  line %d: %d context word(s): %s\n", lc.Line, lc.ContextWords, lc.Text)
		}
		if res.LowContext > len(res.LowContextFirst) {
			fmt.Fprintf(env.stdout, "  … and %d more\n", res.LowContext-len(res.LowContextFirst))
		}
	}
	if res.Output != "" {
		fmt.Fprintf(env.stdout, "wrote %s\n", res.Output)
	}
	return nil
}

func dataImport(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "data import", "FILE --out DIR [flags]")
	out := fs.String("out", "", "data folder to copy the validated records into (required)")
	kind, pool, skip, minCtx := recordFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("data import: want one FILE and --out DIR")
	}
	o, err := validateOptions(*kind, *pool, *skip, *minCtx)
	if err != nil {
		return err
	}
	res, err := dataset.Import(ctx, pos[0], *out, o)
	if err != nil {
		return fmt.Errorf("import %s (nothing written): %w", pos[0], err)
	}
	return printResult(env, "imported", res, *asJSON)
}

func dataValidate(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "data validate", "FILE [flags]")
	kind, pool, skip, minCtx := recordFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("data validate: want one FILE")
	}
	o, err := validateOptions(*kind, *pool, *skip, *minCtx)
	if err != nil {
		return err
	}
	res, err := dataset.Validate(ctx, pos[0], o)
	var ve *dataset.ValidationError
	if errors.As(err, &ve) && *asJSON {
		if werr := writeJSON(env.stdout, res); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	return printResult(env, "validated", res, *asJSON)
}

func dataStats(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "data stats", "FILE [flags]")
	kind := fs.String("kind", "", "record kind: pool, labels or eval (default: detected from the first line)")
	top := fs.Int("top", 20, "number of top answers to list")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("data stats: want one FILE")
	}
	var k dataset.Kind
	if *kind != "" {
		if k, err = dataset.ParseKind(*kind); err != nil {
			return usageError{err}
		}
	}
	st, err := dataset.ComputeStats(ctx, pos[0], k, *top)
	if err != nil {
		return fmt.Errorf("stats of %s: %w", pos[0], err)
	}
	if *asJSON {
		return writeJSON(env.stdout, st)
	}
	w := env.stdout
	fmt.Fprintf(w, "file         %s (%s)\n", st.File, st.Kind)
	fmt.Fprintf(w, "records      %d (%d invalid lines skipped)\n", st.Records, st.Invalid)
	fmt.Fprintf(w, "duplicates   %d (%.2f%%)\n", st.Duplicates, 100*st.DuplicateRate)
	if len(st.MasksPerItem) > 0 {
		fmt.Fprintf(w, "masks/item   %v\n", st.MasksPerItem)
	}
	if d := st.Words; d != nil {
		fmt.Fprintf(w, "words        min %d  p50 %d  p90 %d  p99 %d  max %d  mean %.1f\n", d.Min, d.P50, d.P90, d.P99, d.Max, d.Mean)
	}
	if len(st.Status) > 0 {
		fmt.Fprintf(w, "status       %v\n", st.Status)
	}
	if len(st.TopAnswers) > 0 {
		parts := make([]string, len(st.TopAnswers))
		for i, c := range st.TopAnswers {
			parts[i] = fmt.Sprintf("%s %d", c.Value, c.Count)
		}
		fmt.Fprintf(w, "top answers  %s\n", strings.Join(parts, ", "))
	}
	return nil
}
