package mlmengine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/workflows"
)

// AnswerSeparator separates the answers of an item with several [MASK]
// blanks inside one label of the old, joined form (label files written
// before labels were lists; workflows.AnswerSeparator).
const AnswerSeparator = workflows.AnswerSeparator

// Keys a fine-tune writes under its TrainRequest.OutputPrefix.
const (
	// ModelDir holds the fine-tuned model (Hugging Face files and the
	// store manifest): the CheckpointURI of the result.
	ModelDir = "model"
	// CheckpointsDir holds the resumable checkpoints, one prefix per
	// uploaded step ("checkpoints/step-00000040"); they are deleted once
	// the model is uploaded.
	CheckpointsDir = "checkpoints"
	// ResultFile records a finished fine-tune, so that a repeated call
	// with the same request returns it without training again.
	ResultFile = "result.json"
)

// trainRecord is ResultFile.
type trainRecord struct {
	Fingerprint   string  `json:"fingerprint"`
	CheckpointURI string  `json:"checkpoint_uri"`
	Steps         int     `json:"steps"`
	ResumedFrom   int     `json:"resumed_from"`
	FinalLoss     float64 `json:"final_loss"`
	Trained       int     `json:"trained"`
	Skipped       int     `json:"skipped"`
	// Sequences is set by Adapt (its Trained counts corpus texts).
	Sequences int `json:"sequences,omitempty"`
}

// CheckpointURI returns the store prefix of the resumable checkpoint a
// fine-tune writing under outputPrefix uploads at step.
func CheckpointURI(outputPrefix string, step int) string {
	return path.Join(outputPrefix, CheckpointsDir, fmt.Sprintf("step-%08d", step))
}

// examples converts labelled items into mlm examples: an item with n
// masks takes n answers, its Answers list, or for labels persisted before
// lists its Label split on AnswerSeparator.
func examples(in []activities.Example) ([]mlm.Example, error) {
	out := make([]mlm.Example, 0, len(in))
	for _, ex := range in {
		n := strings.Count(ex.Text, "[MASK]")
		if n == 0 {
			return nil, fmt.Errorf("%w: example %s has no [MASK] in %q", activities.ErrBadData, ex.ItemID, ex.Text)
		}
		answers := []string{strings.TrimSpace(ex.Label)}
		switch {
		case len(ex.Answers) > 0:
			answers = make([]string, len(ex.Answers))
			for i, a := range ex.Answers {
				answers[i] = strings.TrimSpace(a)
			}
		case n > 1:
			answers = strings.Split(ex.Label, AnswerSeparator)
			for i := range answers {
				answers[i] = strings.TrimSpace(answers[i])
			}
		}
		if len(answers) != n {
			return nil, fmt.Errorf("%w: example %s has %d masks but %d answers in %q", activities.ErrBadData, ex.ItemID, n, len(answers), ex.Label)
		}
		for _, a := range answers {
			if a == "" {
				return nil, fmt.Errorf("%w: example %s has an empty answer in %q", activities.ErrBadData, ex.ItemID, ex.Label)
			}
		}
		out = append(out, mlm.Example{Text: ex.Text, Answers: answers})
	}
	return out, nil
}

// fingerprint identifies a fine-tune request: base model, examples and
// settings.
func fingerprint(req activities.TrainRequest) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(req.BaseModelURI) // hashing plain data cannot fail
	_ = enc.Encode(req.Examples)
	_ = enc.Encode(req.Settings)
	return hex.EncodeToString(h.Sum(nil))
}

// FineTune fine-tunes the model at req.BaseModelURI on req.Examples.
//
// It trains in a local work folder with resumable checkpoints every
// Settings.CheckpointEvery steps (default Options.CheckpointEvery), uploads
// each to CheckpointURI(OutputPrefix, step) and reports it in progress
// (CheckpointURI, CheckpointStep), so that a retried activity, on this or
// another worker, passes it back as req.Resume and continues from that
// step. A checkpoint is uploaded at the first progress report after it is
// written, so the heartbeated one lags the training by at most one
// interval. At the end the model (Hugging Face files only) goes to
// <OutputPrefix>/model, then <OutputPrefix>/result.json records the result
// and the intermediate checkpoints are deleted. A repeated call with the
// same request finds result.json and returns it without training.
func (e *Engine) FineTune(ctx context.Context, req activities.TrainRequest, progress func(activities.TrainProgress)) (activities.TrainResult, error) {
	var res activities.TrainResult
	if req.OutputPrefix == "" {
		return res, fmt.Errorf("%w: fine-tune without an output prefix", activities.ErrBadData)
	}
	exs, err := examples(req.Examples)
	if err != nil {
		return res, fmt.Errorf("fine-tune %s: %w", req.BaseModelURI, err)
	}
	if len(exs) == 0 {
		return res, fmt.Errorf("%w: fine-tune %s: no labelled example", activities.ErrBadData, req.BaseModelURI)
	}
	fp := fingerprint(req)
	modelURI := path.Join(req.OutputPrefix, ModelDir)
	resultKey := path.Join(req.OutputPrefix, ResultFile)

	if rec, ok, err := e.readRecord(ctx, resultKey, fp); err != nil {
		return res, err
	} else if ok {
		e.log.Info("fine-tune already done; returning its result", "model", rec.CheckpointURI, "steps", rec.Steps)
		return activities.TrainResult{CheckpointURI: rec.CheckpointURI, Steps: rec.Steps, FinalLoss: rec.FinalLoss, ResumedFrom: rec.ResumedFrom}, nil
	}

	work, err := os.MkdirTemp(mkdirAll(e.trainRoot()), "finetune-")
	if err != nil {
		return res, fmt.Errorf("fine-tune: create work folder: %w", err)
	}
	defer os.RemoveAll(work)
	ckptDir := filepath.Join(work, "checkpoints")
	if req.Resume != nil && req.Resume.CheckpointURI != "" {
		if err := e.fetchResume(ctx, req.Resume.CheckpointURI, ckptDir); err != nil {
			return res, err
		}
	}

	m, err := e.LoadModel(ctx, req.BaseModelURI)
	if err != nil {
		return res, fmt.Errorf("fine-tune: %w", err)
	}
	defer m.Close()
	if err := e.recordHubModel(ctx, req.OutputPrefix, req.BaseModelURI); err != nil {
		return res, fmt.Errorf("fine-tune: %w", err)
	}

	s := req.Settings.WithDefaults()
	every := s.CheckpointEvery
	if every <= 0 {
		every = e.o.CheckpointEvery
	}
	opts := mlm.FineTuneOptions{
		Epochs: s.Epochs, MaxSteps: s.MaxSteps, BatchSize: s.BatchSize, LR: s.LearningRate,
		WarmupRatio: s.WarmupRatio, Seed: uint64(s.Seed),
		CheckpointDir: ckptDir, CheckpointEvery: every, ResumeDir: ckptDir,
	}
	var replay []string
	if s.ReplayWeight > 0 {
		opts.ReplayWeight = s.ReplayWeight
		replay = mlm.ReplayTexts(exs)
	}

	up := newCheckpointUploader(e, ckptDir, req.OutputPrefix, req.Resume)
	trainCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	out, err := m.FineTune(trainCtx, exs, replay, opts, func(p mlm.Progress) {
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
		return res, fmt.Errorf("fine-tune %s: %w", req.BaseModelURI, upErr)
	}
	if err != nil {
		switch {
		case errors.Is(err, mlm.ErrNoExamples):
			return res, fmt.Errorf("%w: fine-tune %s: %w", activities.ErrBadData, req.BaseModelURI, err)
		case ctx.Err() == nil && out.Steps == 0 && strings.Contains(err.Error(), "resume from"):
			return res, fmt.Errorf("%w: fine-tune %s: %w", activities.ErrBadCheckpoint, req.BaseModelURI, err)
		}
		return res, fmt.Errorf("fine-tune %s: %w", req.BaseModelURI, err)
	}
	if len(out.Skipped) > 0 {
		e.log.Warn("fine-tune skipped examples", "count", len(out.Skipped), "first", out.Skipped[0].Reason)
	}

	rec := trainRecord{Fingerprint: fp, CheckpointURI: modelURI, Steps: out.Steps, ResumedFrom: out.ResumedFrom,
		FinalLoss: out.FinalLoss, Trained: out.Trained, Skipped: len(out.Skipped)}
	if err := e.publish(ctx, m, work, resultKey, req.OutputPrefix, rec); err != nil {
		return res, fmt.Errorf("fine-tune: %w", err)
	}
	e.log.Info("fine-tune done", "model", modelURI, "steps", out.Steps, "resumed_from", out.ResumedFrom, "loss", out.FinalLoss)
	return activities.TrainResult{CheckpointURI: modelURI, Steps: out.Steps, FinalLoss: out.FinalLoss, ResumedFrom: out.ResumedFrom}, nil
}

// publish saves the trained model, uploads it to rec.CheckpointURI, then
// records rec at resultKey (so that a repeated request finds it) and
// deletes the intermediate checkpoints under outputPrefix.
func (e *Engine) publish(ctx context.Context, m *mlm.Model, work, resultKey, outputPrefix string, rec trainRecord) error {
	final := filepath.Join(work, "final")
	if err := m.Save(ctx, final); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if _, _, err := e.o.Store.UploadDir(ctx, final, rec.CheckpointURI); err != nil {
		return fmt.Errorf("upload model to %s: %w", rec.CheckpointURI, err)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", resultKey, err)
	}
	if _, err := e.o.Store.PutBytes(ctx, resultKey, data); err != nil {
		return fmt.Errorf("write %s: %w", resultKey, err)
	}
	e.deleteCheckpoints(ctx, outputPrefix)
	return nil
}

// checkpointUploader uploads the newest local checkpoint of a training run
// to CheckpointURI(prefix, step) from the progress callback, which runs on
// the training goroutine between steps, when the checkpoint folder is
// complete and not being written.
type checkpointUploader struct {
	e      *Engine
	dir    string
	prefix string

	mu   sync.Mutex
	step int
	uri  string
	err  error
}

// newCheckpointUploader starts from the checkpoint a retried activity was
// given back (resume), if any.
func newCheckpointUploader(e *Engine, dir, prefix string, resume *activities.TrainProgress) *checkpointUploader {
	u := &checkpointUploader{e: e, dir: dir, prefix: prefix}
	if resume != nil && resume.CheckpointURI != "" {
		u.step, u.uri = resume.CheckpointStep, resume.CheckpointURI
	}
	return u
}

// upload uploads a checkpoint newer than the last one uploaded, if any;
// on failure it records the error, cancels training and returns false.
func (u *checkpointUploader) upload(ctx context.Context, cancel context.CancelFunc) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return false
	}
	_, step, ok, err := mlm.LatestCheckpoint(u.dir)
	if err != nil {
		u.err = fmt.Errorf("read local checkpoint: %w", err)
		cancel()
		return false
	}
	if ok && step > u.step {
		uri := CheckpointURI(u.prefix, step)
		if _, _, err := u.e.o.Store.UploadDir(ctx, u.dir, uri); err != nil {
			u.err = fmt.Errorf("upload checkpoint of step %d: %w", step, err)
			cancel()
			return false
		}
		u.step, u.uri = step, uri
		u.e.log.Info("checkpoint uploaded", "step", step, "uri", uri)
	}
	return true
}

// last returns the step and URI of the last uploaded checkpoint.
func (u *checkpointUploader) last() (int, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.step, u.uri
}

func (u *checkpointUploader) error() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func mkdirAll(dir string) string {
	_ = os.MkdirAll(dir, 0o755) // MkdirTemp reports the failure
	return dir
}

// readRecord reads result.json; ok is false when it is missing or records
// another request.
func (e *Engine) readRecord(ctx context.Context, key, fp string) (trainRecord, bool, error) {
	var rec trainRecord
	data, _, err := e.o.Store.GetBytes(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rec, false, nil
	case err != nil:
		return rec, false, fmt.Errorf("fine-tune: read %s: %w", key, err)
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.Fingerprint != fp {
		e.log.Warn("fine-tune output prefix holds another result; training again", "key", key)
		return rec, false, nil
	}
	if _, _, err := e.o.Store.ReadManifest(ctx, rec.CheckpointURI); err != nil {
		e.log.Warn("recorded fine-tune model is missing; training again", "model", rec.CheckpointURI, "err", err)
		return rec, false, nil
	}
	return rec, true, nil
}

// fetchResume downloads the checkpoint folder uploaded at uri into dir,
// which then holds mlm's checkpoint layout for FineTune's ResumeDir. The
// download goes through the content-addressed cache; dir gets copies, since
// training writes into it.
func (e *Engine) fetchResume(ctx context.Context, uri, dir string) error {
	src, _, err := e.o.Store.DownloadDir(ctx, uri, e.modelCache())
	if err != nil {
		return storeErr(fmt.Sprintf("fine-tune: download resume checkpoint %s", uri), activities.ErrBadCheckpoint, err)
	}
	if err := copyTree(src, dir); err != nil {
		return fmt.Errorf("fine-tune: copy resume checkpoint %s: %w", uri, err)
	}
	if _, step, ok, err := mlm.LatestCheckpoint(dir); err != nil || !ok {
		return fmt.Errorf("%w: fine-tune: %s is not a resumable checkpoint (found %v): %v", activities.ErrBadCheckpoint, uri, ok, err)
	} else {
		e.log.Info("fine-tune resumes from an uploaded checkpoint", "uri", uri, "step", step)
	}
	return nil
}

// deleteCheckpoints removes the intermediate checkpoints under prefix;
// failures are only logged (they waste space, nothing else).
func (e *Engine) deleteCheckpoints(ctx context.Context, prefix string) {
	objs, err := e.o.Store.List(ctx, path.Join(prefix, CheckpointsDir)+"/")
	if err != nil {
		e.log.Warn("list fine-tune checkpoints to delete", "prefix", prefix, "err", err)
		return
	}
	for _, o := range objs {
		if err := e.o.Store.Delete(ctx, o.Key); err != nil {
			e.log.Warn("delete fine-tune checkpoint object", "key", o.Key, "err", err)
		}
	}
}

// copyTree copies the regular files under src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
