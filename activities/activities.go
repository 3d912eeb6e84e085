package activities

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/clozeloop/clozeloop/workflows"
)

// Activities holds what the activities need. Register its methods under the
// workflows.Activity* names (workers does).
type Activities struct {
	Blobs     Blobs
	Scorer    Scorer
	Trainer   Trainer
	Evaluator Evaluator
	// Adapter serves the Adapt activity (the adaptation phase); nil on
	// workers without it.
	Adapter Adapter
	// Pinner, when set, pins a run's Hub starting model to its commit in
	// ResolveRun.
	Pinner ModelPinner
	// Observer, when set, receives what the activities measured (metrics).
	Observer Observer
	Logger   *slog.Logger
}

// noObserver records nothing.
type noObserver struct{}

func (noObserver) Scored(int, time.Duration)                    {}
func (noObserver) Trained(string, int, int64, float64, float64) {}
func (noObserver) Evaluated(string, map[string]float64)         {}

func (a *Activities) obs() Observer {
	if a.Observer != nil {
		return a.Observer
	}
	return noObserver{}
}

func (a *Activities) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// nonRetryable marks engine errors about bad input as final.
func nonRetryable(what string, err error) error {
	switch {
	case errors.Is(err, ErrBadCheckpoint):
		return temporal.NewNonRetryableApplicationError(what+": "+err.Error(), "BadCheckpoint", err)
	case errors.Is(err, ErrBadData):
		return temporal.NewNonRetryableApplicationError(what+": "+err.Error(), "BadData", err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ScoreShard scores one pool shard, writes every score to in.ScoresKey
// (JSONL) and returns the best in.TopM candidates per strategy. A Scorer
// that implements StreamingScorer writes the scores itself as it goes, so
// that the shard is never held in memory. A shard whose scores file already
// exists is not scored again (its file is read a line at a time), so a
// retried or replayed round redoes only unfinished shards.
func (a *Activities) ScoreShard(ctx context.Context, in workflows.ScoreShardInput) (workflows.ScoreShardOutput, error) {
	out := workflows.ScoreShardOutput{Shard: in.Shard, ScoresKey: in.ScoresKey}
	skip := map[string]bool{}
	for _, id := range in.Exclude {
		skip[id] = true
	}
	if in.LabelSetURI != "" {
		set, err := LoadLabelSet(ctx, a.Blobs, in.LabelSetURI)
		if err != nil {
			return out, fmt.Errorf("score shard %d: %w", in.Shard, err)
		}
		for id := range set.Done {
			skip[id] = true
		}
	}

	data, err := a.Blobs.Get(ctx, in.ScoresKey)
	switch {
	case err == nil:
		top := NewTopCollector(in.Strategies, in.TopM, func(id string) bool { return skip[id] })
		n, err := decodeScores(data, top.Add)
		if err != nil {
			return out, fmt.Errorf("score shard %d: read existing scores %s: %w", in.Shard, in.ScoresKey, err)
		}
		a.log().Info("shard already scored; reusing its scores", "shard", in.Shard, "key", in.ScoresKey)
		out.Scored, out.Top = n, top.Top()
		return out, nil
	case !errors.Is(err, ErrNotFound):
		return out, fmt.Errorf("score shard %d: check %s: %w", in.Shard, in.ScoresKey, err)
	}
	req := ScoreRequest{
		ModelURI: in.ModelURI, PoolURI: in.PoolURI, Shard: in.Shard, NumShards: in.NumShards,
		Strategies: in.Strategies, Seed: in.Seed, Skip: func(id string) bool { return skip[id] },
		TargetURI: in.TargetURI,
	}
	progress := func(done, total int) {
		activity.RecordHeartbeat(ctx, map[string]int{"items_done": done, "items_total": total})
	}
	what := fmt.Sprintf("score shard %d of %s with %s", in.Shard, in.PoolURI, in.ModelURI)
	started := time.Now()
	if ss, ok := a.Scorer.(StreamingScorer); ok {
		res, err := ss.ScoreShardTo(ctx, req, in.ScoresKey, in.TopM, progress)
		if err != nil {
			return out, nonRetryable(what, err)
		}
		a.obs().Scored(res.Scored, time.Since(started))
		out.Scored, out.Top = res.Scored, res.Top
		return out, nil
	}
	items, err := a.Scorer.ScoreShard(ctx, req, progress)
	if err != nil {
		return out, nonRetryable(what, err)
	}
	a.obs().Scored(len(items), time.Since(started))
	if err := a.Blobs.Put(ctx, in.ScoresKey, encodeScores(items)); err != nil {
		return out, fmt.Errorf("score shard %d: write %s: %w", in.Shard, in.ScoresKey, err)
	}
	top := NewTopCollector(in.Strategies, in.TopM, func(id string) bool { return skip[id] })
	for _, it := range items {
		top.Add(it)
	}
	out.Scored, out.Top = len(items), top.Top()
	return out, nil
}

func encodeScores(items []ScoredItem) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, it := range items {
		_ = enc.Encode(it) // plain data: cannot fail
	}
	return b.Bytes()
}

// decodeScores hands every item of a JSONL scores file to add, one at a
// time, and returns how many there were.
func decodeScores(data []byte, add func(ScoredItem)) (int, error) {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var it ScoredItem
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			return n, fmt.Errorf("line %d: %w", line, err)
		}
		add(it)
		n++
	}
	return n, sc.Err()
}

// RoundLabels is the object PersistLabels writes for one round. Decisions
// carry the label as a list, one entry per [MASK] (Labels); files written
// before that have only the joined Label, which LoadLabelSet still reads.
type RoundLabels struct {
	RunID     string                    `json:"run_id"`
	Round     int                       `json:"round"`
	Decisions []workflows.LabelDecision `json:"decisions"`
	Raw       []workflows.RawAnswer     `json:"raw"`
	Late      []workflows.RawAnswer     `json:"late,omitempty"`
	// Dropped counts the records the workflow's bounds left out.
	Dropped int `json:"dropped,omitempty"`
	// Agreement is the round's inter-annotator agreement.
	Agreement *workflows.Agreement `json:"agreement,omitempty"`
}

// LabelSetManifest lists the round files that make up a label set.
type LabelSetManifest struct {
	RunID  string   `json:"run_id"`
	Round  int      `json:"round"`
	Rounds []string `json:"rounds"`
}

// LabelSet is a loaded label set: the latest decision of every item.
type LabelSet struct {
	// Examples are the labelled items (majority label), in round order.
	Examples []Example
	// Done holds every item that must not be selected again (labelled or
	// skipped).
	Done map[string]bool
}

// LoadLabelSet reads a label-set manifest and its round files. A missing
// object wraps ErrNotFound and an undecodable one ErrBadData; any other
// error (the store did not answer) is transient.
func LoadLabelSet(ctx context.Context, b Blobs, uri string) (*LabelSet, error) {
	var m LabelSetManifest
	if err := getJSON(ctx, b, uri, &m); err != nil {
		return nil, fmt.Errorf("load label set: %w", err)
	}
	set := &LabelSet{Done: map[string]bool{}}
	index := map[string]int{}
	for _, key := range m.Rounds {
		var r RoundLabels
		if err := getJSON(ctx, b, key, &r); err != nil {
			return nil, fmt.Errorf("load label set %s: %w", uri, err)
		}
		for _, d := range r.Decisions {
			if !d.Skipped && d.Label == "" {
				continue
			}
			set.Done[d.ItemID] = true
			if d.Skipped {
				continue
			}
			ex := Example{ItemID: d.ItemID, Text: d.Text, Label: d.Label, Answers: append([]string(nil), d.Labels...)}
			if len(ex.Answers) == 0 {
				ex.Answers = nil // a label file written before Labels: Label alone
			}
			if i, ok := index[d.ItemID]; ok {
				set.Examples[i] = ex
			} else {
				index[d.ItemID] = len(set.Examples)
				set.Examples = append(set.Examples, ex)
			}
		}
	}
	return set, nil
}

// PersistLabels writes the round's decisions and raw answers to
// <prefix>/labels/round-NNNN.json and a manifest <prefix>/labels/set-NNNN.json
// that lists it after the previous set's rounds; latest.json points at the
// newest manifest. Every key is a function of the input, so a retry rewrites
// the same bytes: nothing is duplicated.
func (a *Activities) PersistLabels(ctx context.Context, in workflows.PersistLabelsInput) (workflows.PersistLabelsOutput, error) {
	var out workflows.PersistLabelsOutput
	roundKey := fmt.Sprintf("%s/labels/round-%04d.json", in.OutputPrefix, in.Round)
	setKey := fmt.Sprintf("%s/labels/set-%04d.json", in.OutputPrefix, in.Round)
	if err := putJSON(ctx, a.Blobs, roundKey, RoundLabels{RunID: in.RunID, Round: in.Round, Decisions: in.Decisions, Raw: in.Raw, Late: in.Late,
		Dropped: in.Dropped, Agreement: in.Agreement}); err != nil {
		return out, fmt.Errorf("persist labels of round %d: %w", in.Round, err)
	}
	m := LabelSetManifest{RunID: in.RunID, Round: in.Round}
	if in.PrevLabelSet != "" {
		var prev LabelSetManifest
		if err := getJSON(ctx, a.Blobs, in.PrevLabelSet, &prev); err != nil {
			return out, fmt.Errorf("persist labels of round %d: previous set: %w", in.Round, err)
		}
		for _, k := range prev.Rounds {
			if k != roundKey {
				m.Rounds = append(m.Rounds, k)
			}
		}
	}
	m.Rounds = append(m.Rounds, roundKey)
	if err := putJSON(ctx, a.Blobs, setKey, m); err != nil {
		return out, fmt.Errorf("persist labels of round %d: %w", in.Round, err)
	}
	if err := putJSON(ctx, a.Blobs, in.OutputPrefix+"/labels/latest.json", m); err != nil {
		return out, fmt.Errorf("persist labels of round %d: %w", in.Round, err)
	}
	set, err := LoadLabelSet(ctx, a.Blobs, setKey)
	if err != nil {
		return out, err
	}
	out.LabelSetURI = setKey
	out.Labeled = len(set.Examples)
	return out, nil
}

// FineTune trains on every label of the set. Progress (step, loss, last
// saved checkpoint) is heartbeated; a retried attempt reads the last
// heartbeat and resumes from that checkpoint.
func (a *Activities) FineTune(ctx context.Context, in workflows.FineTuneInput) (workflows.FineTuneOutput, error) {
	var out workflows.FineTuneOutput
	set, err := LoadLabelSet(ctx, a.Blobs, in.LabelSetURI)
	switch {
	case errors.Is(err, ErrNotFound):
		return out, nonRetryable("fine-tune", fmt.Errorf("%w: %w", ErrBadData, err))
	case err != nil:
		// ErrBadData is final; anything else (the store did not answer)
		// is retried.
		return out, nonRetryable("fine-tune", err)
	}
	if len(set.Examples) == 0 {
		return out, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("fine-tune: label set %s has no labelled example", in.LabelSetURI), "BadData", nil)
	}
	resume := resumePoint(ctx)
	if resume != nil {
		out.ResumedFromStep = resume.CheckpointStep
		a.log().Info("fine-tune resumes from its last checkpoint", "round", in.Round, "step", resume.CheckpointStep, "checkpoint", resume.CheckpointURI)
	}
	res, err := a.Trainer.FineTune(ctx, TrainRequest{
		BaseModelURI: in.BaseModelURI, Examples: set.Examples, OutputPrefix: in.OutputPrefix,
		Settings: in.Settings, Resume: resume,
	}, trainHeartbeat(ctx, resume, "finetune", a.obs()))
	if err != nil {
		return out, nonRetryable(fmt.Sprintf("fine-tune %s on %s", in.BaseModelURI, in.LabelSetURI), err)
	}
	out.CheckpointURI, out.Steps, out.FinalLoss, out.Examples = res.CheckpointURI, res.Steps, res.FinalLoss, len(set.Examples)
	if res.ResumedFrom != 0 {
		out.ResumedFromStep = res.ResumedFrom // where the trainer actually continued from
	}
	return out, nil
}

// resumePoint is the last checkpoint a training activity heartbeated
// before this attempt, or nil.
func resumePoint(ctx context.Context) *TrainProgress {
	if !activity.HasHeartbeatDetails(ctx) {
		return nil
	}
	var p TrainProgress
	if err := activity.GetHeartbeatDetails(ctx, &p); err != nil || p.CheckpointURI == "" {
		return nil
	}
	return &p
}

// trainHeartbeat heartbeats a training activity's progress, carrying the
// last resumable checkpoint (starting at resume) in every heartbeat, and
// reports the steps and tokens done since the last call to obs as kind.
func trainHeartbeat(ctx context.Context, resume *TrainProgress, kind string, obs Observer) func(TrainProgress) {
	last := TrainProgress{}
	if resume != nil {
		last = *resume
		last.Step = resume.CheckpointStep // training continues from there
	}
	var tokens int64
	return func(p TrainProgress) {
		if p.CheckpointURI == "" {
			p.CheckpointURI, p.CheckpointStep = last.CheckpointURI, last.CheckpointStep
		}
		obs.Trained(kind, p.Step-last.Step, p.Tokens-tokens, p.Loss, p.TokensPerSec)
		tokens = p.Tokens
		last = p
		activity.RecordHeartbeat(ctx, p)
	}
}

// Evaluate computes the metrics of a model on the eval set and, when given,
// on the forgetting set.
func (a *Activities) Evaluate(ctx context.Context, in workflows.EvaluateInput) (workflows.EvaluateOutput, error) {
	var out workflows.EvaluateOutput
	progress := func(done, total int) {
		activity.RecordHeartbeat(ctx, map[string]int{"items_done": done, "items_total": total})
	}
	m, err := a.Evaluator.Evaluate(ctx, in.ModelURI, in.EvalURI, progress)
	if err != nil {
		return out, nonRetryable(fmt.Sprintf("evaluate %s on %s", in.ModelURI, in.EvalURI), err)
	}
	out.Metrics = m
	a.obs().Evaluated("eval", m)
	if in.ForgettingEvalURI != "" {
		f, err := a.Evaluator.Evaluate(ctx, in.ModelURI, in.ForgettingEvalURI, progress)
		if err != nil {
			return out, nonRetryable(fmt.Sprintf("evaluate %s on %s", in.ModelURI, in.ForgettingEvalURI), err)
		}
		out.Forgetting = f
		a.obs().Evaluated("forgetting", f)
	}
	return out, nil
}

// CurrentModel is the object <prefix>/models/current.json.
type CurrentModel struct {
	ModelURI string             `json:"model_uri"`
	Name     string             `json:"name"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
}

// CheckpointManifest is the file, at a checkpoint's root, whose presence
// marks the checkpoint complete (store.ManifestFile).
const CheckpointManifest = "MANIFEST.json"

// errBadPointer marks a models/current.json that is not valid JSON: no
// retry can fix it.
var errBadPointer = errors.New("bad model pointer")

// pointerAttempts bounds how often UploadCheckpoint re-reads a pointer that
// changed between its read and its conditional write.
const pointerAttempts = 5

// UploadCheckpoint copies every object of the checkpoint to
// <prefix>/models/<name>/, the manifest (CheckpointManifest) last so that a
// half-copied checkpoint never looks complete, and, when promoted, points
// <prefix>/models/current.json at it with a compare-and-swap (see
// workflows.UploadCheckpointInput.CheckCurrent). Copies overwrite identical
// objects, so a retry changes nothing.
//
// A pointer moved by another workflow is not an error: the output says
// Promoted false, with Conflict and CurrentModelURI. A pointer that keeps
// changing under the activity (pointerAttempts lost races in a row) is a
// retryable error; an unreadable pointer is a non-retryable one.
func (a *Activities) UploadCheckpoint(ctx context.Context, in workflows.UploadCheckpointInput) (workflows.UploadCheckpointOutput, error) {
	var out workflows.UploadCheckpointOutput
	src := strings.TrimSuffix(in.CheckpointURI, "/") + "/"
	keys, err := a.Blobs.List(ctx, src)
	if err != nil {
		return out, fmt.Errorf("upload checkpoint: list %s: %w", src, err)
	}
	if len(keys) == 0 {
		return out, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("upload checkpoint: bad checkpoint: no files under %s", src), "BadCheckpoint", nil)
	}
	manifest := src + CheckpointManifest
	sort.SliceStable(keys, func(i, j int) bool { return keys[i] != manifest && keys[j] == manifest })
	dst := path.Join(in.OutputPrefix, "models", in.Name)
	for i, k := range keys {
		if err := a.Blobs.Copy(ctx, k, dst+"/"+strings.TrimPrefix(k, src)); err != nil {
			return out, fmt.Errorf("upload checkpoint: copy %s: %w", k, err)
		}
		activity.RecordHeartbeat(ctx, map[string]int{"files_done": i + 1, "files_total": len(keys)})
	}
	out.ModelURI = dst
	if in.Promote {
		if err := a.promote(ctx, in, dst, &out); err != nil {
			if errors.Is(err, errBadPointer) {
				return out, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("upload checkpoint: promote %s: %v", dst, err), "BadPointer", err)
			}
			return out, fmt.Errorf("upload checkpoint: promote %s: %w", dst, err)
		}
	}
	return out, nil
}

// promote moves <prefix>/models/current.json to dst by compare-and-swap.
func (a *Activities) promote(ctx context.Context, in workflows.UploadCheckpointInput, dst string, out *workflows.UploadCheckpointOutput) error {
	key := path.Join(in.OutputPrefix, "models", "current.json")
	next, err := json.MarshalIndent(CurrentModel{ModelURI: dst, Name: in.Name, Metrics: in.Metrics}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	for attempt := 1; attempt <= pointerAttempts; attempt++ {
		raw, ver, err := a.Blobs.GetVersioned(ctx, key)
		switch {
		case errors.Is(err, ErrNotFound):
			ver = "" // create it, unless someone else does first
		case err != nil:
			return fmt.Errorf("read %s: %w", key, err)
		default:
			var cur CurrentModel
			if err := json.Unmarshal(raw, &cur); err != nil {
				return fmt.Errorf("read %s: %w: %w", key, errBadPointer, err)
			}
			if cur.ModelURI == dst { // a retry after the write went through
				out.Promoted = true
				return nil
			}
			if in.CheckCurrent && cur.ModelURI != in.ExpectedCurrentURI {
				out.Conflict = fmt.Sprintf("%s names %s, not %s: another workflow promoted it, so the pointer was left alone",
					key, cur.ModelURI, orNone(in.ExpectedCurrentURI))
				out.CurrentModelURI = cur.ModelURI
				a.log().Warn("promotion lost to another workflow", "pointer", key, "current", cur.ModelURI, "expected", in.ExpectedCurrentURI, "candidate", dst)
				return nil
			}
		}
		err = a.Blobs.PutIf(ctx, key, next, ver)
		if err == nil {
			out.Promoted = true
			return nil
		}
		if !errors.Is(err, ErrPreconditionFailed) {
			return fmt.Errorf("write %s: %w", key, err)
		}
		// The pointer changed between the read and the write: decide again.
	}
	return fmt.Errorf("write %s: it changed under %d conditional writes in a row", key, pointerAttempts)
}

func orNone(s string) string {
	if s == "" {
		return "no model"
	}
	return s
}

// ResolveRun reads a run's current model and newest label set.
func (a *Activities) ResolveRun(ctx context.Context, in workflows.ResolveRunInput) (workflows.ResolveRunOutput, error) {
	var out workflows.ResolveRunOutput
	var cur CurrentModel
	switch err := getJSON(ctx, a.Blobs, path.Join(in.OutputPrefix, "models", "current.json"), &cur); {
	case err == nil:
		out.ModelURI, out.Metrics = cur.ModelURI, cur.Metrics
	case !errors.Is(err, ErrNotFound):
		return out, fmt.Errorf("resolve run %s: %w", in.OutputPrefix, err)
	}
	var m LabelSetManifest
	switch err := getJSON(ctx, a.Blobs, path.Join(in.OutputPrefix, "labels", "latest.json"), &m); {
	case err == nil:
		out.LabelSetURI = fmt.Sprintf("%s/labels/set-%04d.json", in.OutputPrefix, m.Round)
	case !errors.Is(err, ErrNotFound):
		return out, fmt.Errorf("resolve run %s: %w", in.OutputPrefix, err)
	}
	if in.ModelURI != "" && a.Pinner != nil && out.ModelURI == "" && out.LabelSetURI == "" {
		pinned, err := a.Pinner.PinModel(ctx, in.ModelURI, in.OutputPrefix)
		if err != nil {
			return out, nonRetryable(fmt.Sprintf("resolve run %s: starting model %s", in.OutputPrefix, in.ModelURI), err)
		}
		if pinned != in.ModelURI {
			out.PinnedModelURI = pinned
		}
	}
	return out, nil
}

// ModelPinner pins model references that can move (Hugging Face Hub
// branches and tags) to what they name now.
type ModelPinner interface {
	// PinModel returns uri pinned to its current commit, after recording
	// the resolution under prefix; a URI that cannot move comes back
	// unchanged.
	PinModel(ctx context.Context, uri, prefix string) (string, error)
}

func getJSON(ctx context.Context, b Blobs, key string, v any) error {
	data, err := b.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: decode %s: %w", ErrBadData, key, err)
	}
	return nil
}

func putJSON(ctx context.Context, b Blobs, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if err := b.Put(ctx, key, data); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}
