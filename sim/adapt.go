package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/internal/atomicfile"
	"github.com/clozeloop/clozeloop/mlm"
)

// AdaptOptions configure the adaptation of the starting model before
// round 0: continued masked-LM pretraining on the pool's text, run once per
// simulation and shared by every strategy and seed, as the workflow's
// adaptation phase does before round 1. The corpus is the pool items'
// texts with their blanks kept as unpredicted input
// (dataset.AdaptationText); the oracle's answers are never used. Texts are
// one training sequence each (mlm.PackLines), as in the workflow.
type AdaptOptions struct {
	// Steps is the number of optimizer steps (0: no adaptation).
	Steps int `json:"steps"`
	// LR is the peak learning rate (default 5e-4).
	LR float64 `json:"lr"`
	// BatchSize is the number of texts per step (default 32).
	BatchSize int `json:"batch_size"`
	// SeqLen is the longest sequence in tokens (default: the model's
	// maximum).
	SeqLen int `json:"seq_len"`
	// MaskProb is the share of tokens predicted (default 0.15).
	MaskProb float64 `json:"mask_prob"`
	Seed     int64   `json:"seed"`
	// TargetShare, when positive (at most 1), adapts on that share of
	// the pool's texts only: those most like the target sample by
	// dataset.DomainScorer (cross-entropy difference of unigram word
	// models), for pools that are mostly off-target. 0 adapts on the
	// whole pool.
	TargetShare float64 `json:"target_share,omitempty"`
}

// AdaptDir is the folder of a simulation's output folder that holds the
// adapted model; its AdaptFile records how it was made.
const (
	AdaptDir  = "adapted-model"
	AdaptFile = "adapt.json"
)

// adaptProgressMsg is the message of Adapt's progress logs.
const adaptProgressMsg = "adapting the starting model on the pool text"

// AdaptRecord is AdaptFile: how the adapted model was made.
type AdaptRecord struct {
	// Fingerprint hashes the starting model's files, the corpus and the
	// options; a later simulation with the same fingerprint reuses the
	// model.
	Fingerprint string       `json:"fingerprint"`
	StartDir    string       `json:"start_dir"`
	Options     AdaptOptions `json:"options"`
	Texts       int          `json:"texts"`
	// PoolTexts is the pool's texts before TargetShare chose among them.
	PoolTexts   int     `json:"pool_texts,omitempty"`
	Sequences   int     `json:"sequences"`
	Steps       int     `json:"steps"`
	ResumedFrom int     `json:"resumed_from,omitempty"`
	FinalLoss   float64 `json:"final_loss"`
	Seconds     float64 `json:"seconds"`
	// Dir is the adapted model's folder; Reused is set when an earlier
	// simulation's model was reused (neither is stored).
	Dir    string `json:"-"`
	Reused bool   `json:"-"`
}

// AdaptCorpus returns the adaptation corpus of a pool: the items' texts
// that have something to learn from (dataset.AdaptationText).
func AdaptCorpus(pool []Item) []string {
	var out []string
	for _, it := range pool {
		if t, ok := dataset.AdaptationText(it.Text); ok {
			out = append(out, t)
		}
	}
	return out
}

// TargetCorpus returns the share of texts most like the target sample's
// texts (dataset.DomainScorer, scored against the texts themselves), in
// their order.
func TargetCorpus(texts []string, target []Item, share float64) ([]string, error) {
	d, err := targetScorer(target, texts)
	if err != nil {
		return nil, err
	}
	scores := make([]float64, len(texts))
	for i, t := range texts {
		scores[i] = d.Score(t)
	}
	top, err := dataset.NewTopShare(scores, share)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, top.Kept)
	for i, t := range texts {
		if top.Keep(scores[i]) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Adapt adapts the model in startDir on the pool's text (with
// a.TargetShare, on the part of it most like target, the target sample)
// and saves it in <outDir>/AdaptDir, or reuses the model there when its AdaptFile records
// the same starting model, corpus and options. Training keeps resumable
// checkpoints in <outDir>/AdaptDir.checkpoints, so an interrupted
// simulation continues its adaptation where it stopped. The returned
// record's Dir is the model folder to start the simulation from.
func Adapt(ctx context.Context, startDir string, mopts mlm.Options, pool, target []Item, a AdaptOptions, outDir string, log *slog.Logger) (AdaptRecord, error) {
	if log == nil {
		log = slog.Default()
	}
	rec := AdaptRecord{StartDir: startDir, Options: a, Dir: filepath.Join(outDir, AdaptDir)}
	if a.Steps <= 0 {
		return rec, fmt.Errorf("adapt: steps must be positive, got %d", a.Steps)
	}
	texts := AdaptCorpus(pool)
	if len(texts) == 0 {
		return rec, errors.New("adapt: no pool item has a word besides its blanks")
	}
	if a.TargetShare != 0 {
		if !(a.TargetShare > 0 && a.TargetShare <= 1) {
			return rec, fmt.Errorf("adapt: target share %g must be within (0, 1]", a.TargetShare)
		}
		rec.PoolTexts = len(texts)
		var err error
		if texts, err = TargetCorpus(texts, target, a.TargetShare); err != nil {
			return rec, fmt.Errorf("adapt: choose the pool texts most like the target sample: %w", err)
		}
		log.Info("adaptation corpus: the pool texts most like the target sample", "kept", len(texts), "of", rec.PoolTexts, "share", a.TargetShare)
	}
	rec.Texts = len(texts)
	fp, err := adaptFingerprint(startDir, texts, a)
	if err != nil {
		return rec, fmt.Errorf("adapt: %w", err)
	}
	rec.Fingerprint = fp
	if old, ok := readAdaptRecord(rec.Dir); ok && old.Fingerprint == fp {
		old.Dir, old.Reused = rec.Dir, true
		log.Info("adapted model reused", "dir", rec.Dir, "steps", old.Steps, "loss", old.FinalLoss)
		return old, nil
	}

	m, err := mlm.Load(ctx, startDir, mopts)
	if err != nil {
		return rec, fmt.Errorf("adapt: load starting model: %w", err)
	}
	defer m.Close()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return rec, fmt.Errorf("adapt: create output folder: %w", err)
	}
	ckpt := rec.Dir + ".checkpoints"
	if err := claimCheckpoints(ckpt, fp); err != nil {
		return rec, fmt.Errorf("adapt: %w", err)
	}
	every := max(a.Steps/10, 1)
	start := time.Now()
	res, err := mlm.Pretrain(ctx, m, mlm.Texts(texts), mlm.PretrainOptions{
		Steps: a.Steps, BatchSize: a.BatchSize, SeqLen: a.SeqLen, Packing: mlm.PackLines, LR: a.LR,
		MaskProb: a.MaskProb, Seed: uint64(a.Seed), CheckpointDir: ckpt, CheckpointEvery: every,
	}, func(p mlm.Progress) {
		if p.Step%every == 0 || p.Step == p.TotalSteps {
			log.Info(adaptProgressMsg, "step", p.Step, "of", p.TotalSteps, "loss", p.Loss)
		}
	})
	if err != nil {
		return rec, fmt.Errorf("adapt: %w", err)
	}
	rec.Sequences, rec.Steps, rec.ResumedFrom, rec.FinalLoss = res.Sequences, res.Steps, res.ResumedFrom, res.FinalLoss
	rec.Seconds = time.Since(start).Seconds()

	// Save next to the final folder, then swap it in, so that a crash
	// never leaves a half-written model that a later run would reuse.
	tmp := rec.Dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return rec, fmt.Errorf("adapt: clear %s: %w", tmp, err)
	}
	if err := m.Save(ctx, tmp); err != nil {
		return rec, fmt.Errorf("adapt: save adapted model: %w", err)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return rec, fmt.Errorf("adapt: encode %s: %w", AdaptFile, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, AdaptFile), data, 0o644); err != nil {
		return rec, fmt.Errorf("adapt: %w", err)
	}
	if err := os.RemoveAll(rec.Dir); err != nil {
		return rec, fmt.Errorf("adapt: replace %s: %w", rec.Dir, err)
	}
	if err := os.Rename(tmp, rec.Dir); err != nil {
		return rec, fmt.Errorf("adapt: move adapted model into %s: %w", rec.Dir, err)
	}
	for _, p := range []string{ckpt, ckpt + ".fingerprint"} {
		if err := os.RemoveAll(p); err != nil {
			log.Warn("adapt: remove checkpoints", "path", p, "err", err)
		}
	}
	log.Info("starting model adapted", "dir", rec.Dir, "texts", rec.Texts, "steps", rec.Steps, "loss", rec.FinalLoss, "seconds", rec.Seconds)
	return rec, nil
}

// claimCheckpoints keeps the checkpoints in dir when they belong to the
// adaptation fp (an interrupted run of it, which then resumes) and clears
// them otherwise, recording fp in dir.fingerprint.
func claimCheckpoints(dir, fp string) error {
	mark := dir + ".fingerprint"
	if old, err := os.ReadFile(mark); err == nil && string(old) == fp {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear checkpoints of another adaptation in %s: %w", dir, err)
	}
	return atomicfile.WriteFile(mark, []byte(fp), 0o644)
}

func readAdaptRecord(dir string) (AdaptRecord, bool) {
	var rec AdaptRecord
	data, err := os.ReadFile(filepath.Join(dir, AdaptFile))
	if err != nil || json.Unmarshal(data, &rec) != nil {
		return rec, false
	}
	return rec, true
}

// adaptFingerprint hashes the regular files of the starting model's
// folder (names and contents), the corpus and the options.
func adaptFingerprint(startDir string, texts []string, a AdaptOptions) (string, error) {
	h := sha256.New()
	var files []string
	err := filepath.WalkDir(startDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read starting model %s: %w", startDir, err)
	}
	slices.Sort(files)
	for _, p := range files {
		rel, _ := filepath.Rel(startDir, p) // p is under startDir
		fmt.Fprintf(h, "file %q\n", rel)
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("read starting model: %w", err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("read starting model %s: %w", p, err)
		}
	}
	enc := json.NewEncoder(h)
	_ = enc.Encode(a) // hashing plain data cannot fail
	_ = enc.Encode(texts)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// targetScorer returns the domain scorer of the target sample's texts
// against the corpus texts.
func targetScorer(target []Item, corpus []string) (*dataset.DomainScorer, error) {
	tt := make([]string, len(target))
	for i, it := range target {
		tt[i] = it.Text
	}
	d, err := dataset.NewDomainScorer(tt)
	if err != nil {
		return nil, err
	}
	for _, t := range corpus {
		d.Add(t)
	}
	return d, nil
}
