package mlmengine

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/mlm"
)

var _ activities.Adapter = (*Engine)(nil)

// adaptFingerprint identifies an adaptation request: base model, corpus
// and settings.
func adaptFingerprint(req activities.AdaptRequest) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode("adapt") // hashing plain data cannot fail
	_ = enc.Encode(req.BaseModelURI)
	_ = enc.Encode(req.PoolURI)
	_ = enc.Encode(req.Settings)
	if req.TargetURI != "" {
		_ = enc.Encode(req.TargetURI)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Adapt continues the masked-LM pretraining of req.BaseModelURI on the
// pool's texts (dataset.AdaptationText: blanks kept as input, never
// predicted; texts without a word left out) or on the plain-text corpus at
// req.Settings.TextURI (one text a line, empty lines left out), with
// mlm.Pretrain.
//
// Checkpoints and the result follow FineTune's layout and rules: a
// resumable checkpoint every Settings.CheckpointEvery steps (default
// Options.CheckpointEvery) is uploaded to CheckpointURI(OutputPrefix,
// step) and named in progress, so that a retried activity passes it back
// as req.Resume and continues from that step; the adapted model goes to
// <OutputPrefix>/model, <OutputPrefix>/result.json records it, the
// intermediate checkpoints are deleted, and a repeated call with the same
// request returns the recorded result without training.
func (e *Engine) Adapt(ctx context.Context, req activities.AdaptRequest, progress func(activities.TrainProgress)) (activities.AdaptResult, error) {
	var res activities.AdaptResult
	if req.OutputPrefix == "" {
		return res, fmt.Errorf("%w: adapt without an output prefix", activities.ErrBadData)
	}
	s := req.Settings
	if err := s.Validate(); err != nil {
		return res, fmt.Errorf("%w: adapt %s: %w", activities.ErrBadData, req.BaseModelURI, err)
	}
	if s.TextURI == "" && req.PoolURI == "" {
		return res, fmt.Errorf("%w: adapt %s: no pool and no text corpus", activities.ErrBadData, req.BaseModelURI)
	}
	if s.TargetShare > 0 && req.TargetURI == "" {
		return res, fmt.Errorf("%w: adapt %s: target_share %g without a target sample (run config target_uri)", activities.ErrBadData, req.BaseModelURI, s.TargetShare)
	}
	fp := adaptFingerprint(req)
	modelURI := path.Join(req.OutputPrefix, ModelDir)
	resultKey := path.Join(req.OutputPrefix, ResultFile)
	if rec, ok, err := e.readRecord(ctx, resultKey, fp); err != nil {
		return res, err
	} else if ok {
		e.log.Info("adaptation already done; returning its result", "model", rec.CheckpointURI, "steps", rec.Steps)
		return activities.AdaptResult{CheckpointURI: rec.CheckpointURI, Steps: rec.Steps, FinalLoss: rec.FinalLoss,
			ResumedFrom: rec.ResumedFrom, Texts: rec.Trained, Sequences: rec.Sequences}, nil
	}

	work, err := os.MkdirTemp(mkdirAll(e.trainRoot()), "adapt-")
	if err != nil {
		return res, fmt.Errorf("adapt: create work folder: %w", err)
	}
	defer os.RemoveAll(work)
	ckptDir := filepath.Join(work, "checkpoints")
	if req.Resume != nil && req.Resume.CheckpointURI != "" {
		if err := e.fetchResume(ctx, req.Resume.CheckpointURI, ckptDir); err != nil {
			return res, fmt.Errorf("adapt: %w", err)
		}
	}
	m, err := e.LoadModel(ctx, req.BaseModelURI)
	if err != nil {
		return res, fmt.Errorf("adapt: %w", err)
	}
	defer m.Close()
	if err := e.recordHubModel(ctx, req.OutputPrefix, req.BaseModelURI); err != nil {
		return res, fmt.Errorf("adapt: %w", err)
	}

	every := s.CheckpointEvery
	if every <= 0 {
		every = e.o.CheckpointEvery
	}
	packing := mlm.PackLines
	if s.Packing == "pack" {
		packing = mlm.PackSequences
	}
	opts := mlm.PretrainOptions{
		Steps: s.Steps, BatchSize: s.BatchSize, SeqLen: s.SeqLen, Packing: packing, LR: s.LearningRate,
		MaskProb: s.MaskProb, Seed: uint64(s.Seed), CheckpointDir: ckptDir, CheckpointEvery: every,
	}
	up := newCheckpointUploader(e, ckptDir, req.OutputPrefix, req.Resume)
	trainCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	texts := 0
	corpus, what := e.adaptCorpus(ctx, req)
	if s.TargetShare > 0 {
		if corpus, err = e.targetCorpus(ctx, req, corpus, what); err != nil {
			var le *dataset.LineError
			if errors.As(err, &le) && !errors.Is(err, activities.ErrBadData) {
				err = fmt.Errorf("%w: %w", activities.ErrBadData, err)
			}
			return res, fmt.Errorf("adapt %s: %w", req.BaseModelURI, err)
		}
	}
	corpus = counted(corpus, &texts)
	out, err := mlm.Pretrain(trainCtx, m, corpus, opts, func(p mlm.Progress) {
		if !up.upload(ctx, cancel) {
			return
		}
		if progress != nil {
			step, uri := up.last()
			progress(activities.TrainProgress{Step: p.Step, TotalSteps: p.TotalSteps, Loss: p.Loss,
				Tokens: p.Tokens, TokensPerSec: p.TokensPerSec, CheckpointURI: uri, CheckpointStep: step})
		}
	})
	if upErr := up.error(); upErr != nil {
		return res, fmt.Errorf("adapt %s: %w", req.BaseModelURI, upErr)
	}
	if err != nil {
		var le *dataset.LineError
		switch {
		case errors.As(err, &le), strings.Contains(err.Error(), "the corpus has no tokens"):
			return res, fmt.Errorf("%w: adapt %s on %s: %w", activities.ErrBadData, req.BaseModelURI, what, err)
		case ctx.Err() == nil && out.Steps == 0 && strings.Contains(err.Error(), "resume from"):
			return res, fmt.Errorf("%w: adapt %s: %w", activities.ErrBadCheckpoint, req.BaseModelURI, err)
		}
		return res, fmt.Errorf("continued pretraining: %w", err)
	}

	rec := trainRecord{Fingerprint: fp, CheckpointURI: modelURI, Steps: out.Steps, ResumedFrom: out.ResumedFrom,
		FinalLoss: out.FinalLoss, Trained: texts, Sequences: out.Sequences}
	if err := e.publish(ctx, m, work, resultKey, req.OutputPrefix, rec); err != nil {
		return res, fmt.Errorf("adapt: %w", err)
	}
	e.log.Info("adaptation done", "model", modelURI, "corpus", what, "texts", texts, "sequences", out.Sequences,
		"steps", out.Steps, "resumed_from", out.ResumedFrom, "loss", out.FinalLoss)
	return activities.AdaptResult{CheckpointURI: modelURI, Steps: out.Steps, FinalLoss: out.FinalLoss,
		ResumedFrom: out.ResumedFrom, Texts: texts, Sequences: out.Sequences}, nil
}

// counted yields corpus's texts, counting them in *n.
func counted(corpus iter.Seq2[string, error], n *int) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for t, err := range corpus {
			if err == nil {
				*n++
			}
			if !yield(t, err) {
				return
			}
		}
	}
}

// targetCorpus reads the target sample at req.TargetURI and returns the
// req.Settings.TargetShare of corpus's texts most like it
// (dataset.DomainScorer): it reads corpus twice, to count its words and to
// score its texts, and filters it on every later pass.
func (e *Engine) targetCorpus(ctx context.Context, req activities.AdaptRequest, corpus iter.Seq2[string, error], what string) (iter.Seq2[string, error], error) {
	target, err := e.readTexts(ctx, req.TargetURI)
	if err != nil {
		return nil, err
	}
	d, err := dataset.NewDomainScorer(target)
	if err != nil {
		return nil, fmt.Errorf("%w: target sample %s: %w", activities.ErrBadData, req.TargetURI, err)
	}
	for t, err := range corpus {
		if err != nil {
			return nil, err
		}
		d.Add(t)
	}
	var scores []float64
	for t, err := range corpus {
		if err != nil {
			return nil, err
		}
		scores = append(scores, d.Score(t))
	}
	top, err := dataset.NewTopShare(scores, req.Settings.TargetShare)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", activities.ErrBadData, what, err)
	}
	e.log.Info("adaptation corpus: the texts most like the target sample", "corpus", what, "target", req.TargetURI,
		"target_texts", len(target), "kept", top.Kept, "of", len(scores), "share", req.Settings.TargetShare)
	return func(yield func(string, error) bool) {
		top.Reset()
		for t, err := range corpus {
			if err != nil {
				yield("", err)
				return
			}
			if top.Keep(d.Score(t)) && !yield(t, nil) {
				return
			}
		}
	}, nil
}

// readTexts reads the "text" of every record of a JSONL file in the store
// (blank lines skipped).
func (e *Engine) readTexts(ctx context.Context, uri string) ([]string, error) {
	rc, _, err := e.o.Store.Get(ctx, uri)
	if err != nil {
		return nil, storeErr(fmt.Sprintf("read target sample %s", uri), activities.ErrBadData, err)
	}
	defer rc.Close()
	var out []string
	r := dataset.NewItemReader(rc, uri, dataset.Options{})
	for r.Next() {
		out = append(out, r.Record().Text)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("read target sample %s: %w", uri, err)
	}
	return out, nil
}

// adaptCorpus streams the adaptation corpus from the store; what names it
// for messages.
func (e *Engine) adaptCorpus(ctx context.Context, req activities.AdaptRequest) (iter.Seq2[string, error], string) {
	if uri := req.Settings.TextURI; uri != "" {
		return func(yield func(string, error) bool) {
			rc, _, err := e.o.Store.Get(ctx, uri)
			if err != nil {
				yield("", storeErr(fmt.Sprintf("read text corpus %s", uri), activities.ErrBadData, err))
				return
			}
			defer rc.Close()
			sc := bufio.NewScanner(rc)
			sc.Buffer(make([]byte, 0, 64<<10), dataset.MaxLineBytes)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" {
					continue
				}
				if !yield(line, nil) {
					return
				}
			}
			if err := sc.Err(); err != nil {
				yield("", fmt.Errorf("read text corpus %s: %w", uri, err))
			}
		}, uri
	}
	uri := req.PoolURI
	return func(yield func(string, error) bool) {
		rc, _, err := e.o.Store.Get(ctx, uri)
		if err != nil {
			yield("", storeErr(fmt.Sprintf("read pool %s", uri), activities.ErrBadData, err))
			return
		}
		defer rc.Close()
		r := dataset.NewItemReader(rc, uri, dataset.Options{})
		for r.Next() {
			text, ok := dataset.AdaptationText(r.Record().Text)
			if !ok {
				continue
			}
			if !yield(text, nil) {
				return
			}
		}
		if err := r.Err(); err != nil {
			yield("", fmt.Errorf("read pool %s: %w", uri, err))
		}
	}, uri
}
