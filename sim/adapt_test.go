package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/tokenize"
)

func TestAdaptCorpus(t *testing.T) {
	got := AdaptCorpus([]Item{{ID: "a", Text: "the [MASK] sat"}, {ID: "b", Text: "[MASK] [MASK]"}, {ID: "c", Text: "[MASK] ."}, {ID: "d", Text: "a [MASK] b [MASK]"}})
	if len(got) != 2 || got[0] != "the [MASK] sat" || got[1] != "a [MASK] b [MASK]" {
		t.Fatalf("corpus %q, want the two items with words, blanks kept", got)
	}
}

// TestAdapt adapts a tiny untrained model on a synthetic pool: the adapted
// model predicts the eval blanks better than the starting one, a second
// call reuses it, other options train again, and an interrupted adaptation
// resumes from its checkpoint.
func TestAdapt(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	ctx := context.Background()
	dataDir, sentences := syntheticCloze(t)
	tok, err := tokenize.TrainWordPiece(ctx, mlm.Texts(sentences), tokenize.TrainOptions{VocabSize: 200, Lowercase: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := mlm.TinyConfig(tok.VocabSize())
	cfg.HiddenSize, cfg.IntermediateSize, cfg.MaxPositionEmbeddings = 64, 128, 32
	mopts := mlm.Options{Device: "cpu", Threads: 1, Seed: 3}
	m, err := mlm.New(cfg, tok, mopts)
	if err != nil {
		t.Fatal(err)
	}
	start := filepath.Join(t.TempDir(), "model")
	if err := m.Save(ctx, start); err != nil {
		t.Fatal(err)
	}
	m.Close()
	data, err := LoadData(ctx, dataDir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out") // not there yet: Adapt creates it
	opts := AdaptOptions{Steps: 60, LR: 3e-3, BatchSize: 16, Seed: 1}

	rec, err := Adapt(ctx, start, mopts, data.Pool, nil, opts, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Reused || rec.Steps != 60 || rec.Texts != len(data.Pool) || rec.Dir != filepath.Join(out, AdaptDir) {
		t.Errorf("record %+v", rec)
	}
	base, adapted := evalTop5(t, start, mopts, data), evalTop5(t, rec.Dir, mopts, data)
	if !(adapted > base) {
		t.Errorf("adapted top-5 %.3f not above the starting model's %.3f", adapted, base)
	}
	t.Logf("eval top-5: start %.3f, adapted %.3f (loss %.3f)", base, adapted, rec.FinalLoss)

	again, err := Adapt(ctx, start, mopts, data.Pool, nil, opts, out, nil)
	if err != nil || !again.Reused || again.Fingerprint != rec.Fingerprint || again.FinalLoss != rec.FinalLoss {
		t.Errorf("second call: %+v, %v; want the first model reused", again, err)
	}

	// Other options: trained again; interrupted at step 3, then resumed.
	opts.Steps, opts.Seed = 8, 2
	cctx, cancel := context.WithCancel(ctx)
	steps := 0
	_, err = Adapt(cctx, start, mopts, data.Pool, nil, opts, out, loggerCalling(func() {
		if steps++; steps == 1 {
			cancel()
		}
	}))
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted adaptation: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, AdaptDir, AdaptFile)); err != nil {
		t.Fatalf("the earlier adapted model should stay until the new one is saved: %v", err)
	}
	re, err := Adapt(ctx, start, mopts, data.Pool, nil, opts, out, nil)
	if err != nil || re.Reused || re.Steps != 8 || re.ResumedFrom == 0 || re.Fingerprint == rec.Fingerprint {
		t.Fatalf("resumed: %+v, %v; want a new model resumed from a checkpoint", re, err)
	}
	if _, err := os.Stat(filepath.Join(out, AdaptDir+".checkpoints")); !os.IsNotExist(err) {
		t.Errorf("checkpoints left after a finished adaptation: %v", err)
	}
}

func evalTop5(t *testing.T, dir string, mopts mlm.Options, data *Data) float64 {
	t.Helper()
	m, err := (&MLMEngine{Dir: dir, Options: mopts}).Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	acc, err := m.Evaluate(context.Background(), data.Eval)
	if err != nil {
		t.Fatal(err)
	}
	return acc.Top5
}

// callingHandler is a slog handler that calls fn on every progress record
// of the adaptation.
type callingHandler struct{ fn func() }

func (h callingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h callingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == adaptProgressMsg {
		h.fn()
	}
	return nil
}
func (h callingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h callingHandler) WithGroup(string) slog.Handler      { return h }

func loggerCalling(fn func()) *slog.Logger { return slog.New(callingHandler{fn}) }

func TestTargetCorpus(t *testing.T) {
	texts := []string{
		"he stood at the [MASK] of the stage",
		"and the lord said unto moses [MASK]",
		"his cries were [MASK]",
		"and moses said unto the lord , [MASK]",
		"the [MASK] was late",
		"unto thee shall the [MASK] be given",
	}
	target := []Item{{Text: "and the lord spake unto [MASK]"}, {Text: "moses said unto aaron , [MASK] thee"}}
	tests := []struct {
		share float64
		want  []string
	}{
		{0.5, []string{texts[1], texts[3], texts[5]}},
		{0.2, []string{texts[1], texts[3]}},
		{0.1, []string{texts[1]}}, // texts[3] has the same words: a tie, kept in order
		{1, texts},
	}
	for _, tt := range tests {
		got, err := TargetCorpus(texts, target, tt.share)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("TargetCorpus(share %g) = %q, %v; want %q", tt.share, got, err, tt.want)
		}
	}
	if _, err := TargetCorpus(texts, []Item{{Text: "[MASK]"}}, 0.5); err == nil || !strings.Contains(err.Error(), "no word") {
		t.Errorf("wordless target sample: err = %v", err)
	}
	pool := make([]Item, len(texts))
	for i, s := range texts {
		pool[i] = Item{ID: fmt.Sprint(i), Text: s}
	}
	for _, share := range []float64{-0.1, 1.5} {
		_, err := Adapt(context.Background(), t.TempDir(), mlm.Options{}, pool, target, AdaptOptions{Steps: 1, TargetShare: share}, t.TempDir(), nil)
		if err == nil || !strings.Contains(err.Error(), "within (0, 1]") {
			t.Errorf("target share %g: err = %v", share, err)
		}
	}
}
