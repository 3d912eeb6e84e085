package mlm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clozeloop/clozeloop/internal/atomicfile"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/safetensors"
	"github.com/clozeloop/clozeloop/torchrt"
)

// ErrNoExamples is returned (wrapped) by FineTune when no example can be
// trained on; the result still lists why each one was skipped.
var ErrNoExamples = errors.New("no trainable examples")

// Example is one annotated cloze item: a text with one or more mask tokens
// and the annotator's answer for each mask, in text order.
type Example struct {
	Text    string   `json:"text"`
	Answers []string `json:"answers"`
}

// Filled returns the example's text with its answers in place of its mask
// tokens, in order.
func (e Example) Filled() string {
	s := e.Text
	for _, a := range e.Answers {
		s = strings.Replace(s, "[MASK]", a, 1)
	}
	return s
}

// ReplayTexts returns the texts of examples with their answers filled in
// (Filled): the masked-LM replay texts of the ActiveLearning workflow's
// fine-tune, and of the simulation's.
func ReplayTexts(examples []Example) []string {
	out := make([]string, len(examples))
	for i, e := range examples {
		out[i] = e.Filled()
	}
	return out
}

// Skipped reports an example that FineTune did not train on.
type Skipped struct {
	// Index is the example's index in the input.
	Index int `json:"index"`
	// Text is the example's text.
	Text string `json:"text"`
	// Reason says why, e.g. that an answer maps to the unknown token.
	Reason string `json:"reason"`
}

// Progress is reported after every optimizer step.
type Progress struct {
	// Step is the number of optimizer steps done (1-based), TotalSteps the
	// number the run will take.
	Step, TotalSteps int
	// Epoch is the 0-based pass over the data the step belongs to.
	Epoch int
	// Loss is the step's training loss (mean over its micro-batches).
	Loss float64
	// Tokens is the number of input tokens trained on since this call
	// started (padding excluded), TokensPerSec the throughput since then.
	Tokens       int64
	TokensPerSec float64
	// LR is the learning rate used for the step.
	LR float64
	// GradNorm is the global L2 norm of the step's gradients before
	// clipping (as torch.nn.utils.clip_grad_norm_ returns it).
	GradNorm float64
}

// FineTuneOptions configure FineTune. Zero values take the defaults noted.
type FineTuneOptions struct {
	// Epochs is the number of passes over the examples (default 3); it is
	// ignored when MaxSteps is set.
	Epochs int
	// MaxSteps, when positive, is the number of optimizer steps.
	MaxSteps int
	// BatchSize is the number of examples per micro-batch (default 16).
	BatchSize int
	// GradAccum is the number of micro-batches whose gradients are summed
	// per optimizer step (default 1).
	GradAccum int
	// LR is the peak learning rate (default 5e-5).
	LR float64
	// WarmupSteps is the length of the linear warm-up; WarmupRatio, used
	// when WarmupSteps is 0, gives it as a fraction of the steps.
	WarmupSteps int
	WarmupRatio float64
	// MaxGradNorm clips the global gradient norm (default 1; negative
	// disables clipping).
	MaxGradNorm float64
	// AdamW configures the optimizer.
	AdamW AdamWOptions
	// Seed fixes the data order, the replay masking and dropout.
	Seed uint64

	// Replay lists unlabelled texts for ordinary masked-LM replay against
	// forgetting. ReplayWeight (> 0 enables replay) weighs their loss
	// against the examples' loss; ReplayBatchSize texts (default
	// BatchSize) join every micro-batch; MaskProb (default 0.15) is the
	// share of their tokens that are predicted (80 % replaced by the mask
	// token, 10 % by a random token, 10 % kept).
	ReplayWeight    float64
	ReplayBatchSize int
	MaskProb        float64

	// CheckpointDir, when set, receives a resumable checkpoint every
	// CheckpointEvery optimizer steps (0: only at the end) and at the end.
	CheckpointDir   string
	CheckpointEvery int
	// ResumeDir, when it holds a checkpoint (written by an earlier call with
	// the same examples, replay texts and options), makes FineTune continue
	// from it instead of starting over. A folder without a checkpoint starts
	// a new run. It is usually CheckpointDir.
	ResumeDir string
}

// FineTuneResult summarises a FineTune call.
type FineTuneResult struct {
	// Steps is the number of optimizer steps the run has done in total,
	// ResumedFrom the step it continued from (0 for a new run).
	Steps       int `json:"steps"`
	ResumedFrom int `json:"resumed_from"`
	TotalSteps  int `json:"total_steps"`
	// Trained is the number of examples trained on; Skipped lists the
	// others with the reason.
	Trained int       `json:"trained"`
	Skipped []Skipped `json:"skipped,omitempty"`
	// MaskedPositions is the number of answer pieces trained on per epoch
	// (multi-piece answers count once per piece).
	MaskedPositions int `json:"masked_positions"`
	// FinalLoss is the loss of the last step.
	FinalLoss float64 `json:"final_loss"`
	// Tokens is the number of input tokens processed by this call.
	Tokens int64 `json:"tokens"`
	// Duration is the wall time of this call.
	Duration time.Duration `json:"duration_ns"`
	// Checkpoint is the folder of the last checkpoint written (empty
	// without CheckpointDir).
	Checkpoint string `json:"checkpoint,omitempty"`
}

// trainItem is one input sequence ([CLS] … [SEP]) with the positions to
// predict and their labels.
type trainItem struct {
	ids    []int64
	pos    []int
	labels []int64
	replay bool
}

// batchSource yields the deterministic micro-batches of a run.
type batchSource interface {
	// micro returns micro-batch k (0-based over the whole run) and the
	// epoch it belongs to.
	micro(k int64) ([]trainItem, int)
}

// trainSpec is what the training loop needs besides the data.
type trainSpec struct {
	kind         string // "finetune" or "pretrain", checked on resume
	totalSteps   int
	accum        int
	lr           float64
	warmup       int
	maxGradNorm  float64
	adamW        AdamWOptions
	seed         uint64
	fingerprint  string // identifies data and options, checked on resume
	replayWeight float64
	ckptDir      string
	ckptEvery    int
	resumeDir    string
}

// trainOutcome is what the training loop reports back.
type trainOutcome struct {
	steps, resumedFrom int
	finalLoss          float64
	tokens             int64
	checkpoint         string
}

// FineTune trains the model on annotated examples: cross-entropy at the
// masked positions against the answers' word pieces. A mask whose answer
// splits into several pieces is expanded into that many masks, one per
// piece. An example whose answer maps to the unknown token, whose mask
// count does not match its answers or that does not fit the model is
// reported in FineTuneResult.Skipped and not trained on. Replay texts (see
// FineTuneOptions) are mixed into every micro-batch against forgetting.
//
// progress, if not nil, is called after every optimizer step. When the
// context is cancelled FineTune stops between steps and returns the
// context's error; the last checkpoint written stays valid, and a call
// with ResumeDir set to its folder continues from it.
func (m *Model) FineTune(ctx context.Context, examples []Example, replay []string, opts FineTuneOptions, progress func(Progress)) (FineTuneResult, error) {
	start := time.Now()
	var res FineTuneResult
	if m.tok == nil {
		return res, errors.New("fine-tune: model has no tokenizer")
	}
	if err := opts.normalize(); err != nil {
		return res, fmt.Errorf("fine-tune: %w", err)
	}
	items, skipped := m.labelledItems(examples)
	res.Skipped = skipped
	res.Trained = len(items)
	for _, it := range items {
		res.MaskedPositions += len(it.pos)
	}
	if len(items) == 0 {
		return res, fmt.Errorf("fine-tune: %w (%d of %d examples skipped)", ErrNoExamples, len(skipped), len(examples))
	}
	var pool [][]int64
	if opts.ReplayWeight > 0 {
		var err error
		if pool, err = m.replayPool(ctx, replay); err != nil {
			return res, fmt.Errorf("fine-tune: %w", err)
		}
		if len(pool) == 0 {
			return res, errors.New("fine-tune: replay is enabled (ReplayWeight > 0) but no replay text has any token")
		}
	}
	perEpoch := (len(items) + opts.BatchSize - 1) / opts.BatchSize
	total := opts.MaxSteps
	if total <= 0 {
		total = (opts.Epochs*perEpoch + opts.GradAccum - 1) / opts.GradAccum
	}
	warmup := opts.WarmupSteps
	if warmup == 0 && opts.WarmupRatio > 0 {
		warmup = int(math.Ceil(opts.WarmupRatio * float64(total)))
	}
	src := &fineTuneSource{
		m: m, items: items, pool: pool, batch: opts.BatchSize, perEpoch: perEpoch,
		replayBatch: opts.ReplayBatchSize, maskProb: opts.MaskProb, seed: opts.Seed,
	}
	spec := trainSpec{
		kind: "finetune", totalSteps: total, accum: opts.GradAccum, lr: opts.LR, warmup: warmup,
		maxGradNorm: opts.MaxGradNorm, adamW: opts.AdamW, seed: opts.Seed,
		fingerprint:  src.fingerprint(opts),
		replayWeight: opts.ReplayWeight,
		ckptDir:      opts.CheckpointDir, ckptEvery: opts.CheckpointEvery, resumeDir: opts.ResumeDir,
	}
	out, err := m.train(ctx, src, spec, progress)
	res.Steps, res.ResumedFrom, res.TotalSteps = out.steps, out.resumedFrom, total
	res.FinalLoss, res.Tokens, res.Checkpoint = out.finalLoss, out.tokens, out.checkpoint
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("fine-tune: %w", err)
	}
	return res, nil
}

func (o *FineTuneOptions) normalize() error {
	if o.Epochs == 0 {
		o.Epochs = 3
	}
	if o.BatchSize == 0 {
		o.BatchSize = 16
	}
	if o.GradAccum == 0 {
		o.GradAccum = 1
	}
	if o.LR == 0 {
		o.LR = 5e-5
	}
	if o.MaxGradNorm == 0 {
		o.MaxGradNorm = 1
	}
	if o.ReplayBatchSize == 0 {
		o.ReplayBatchSize = o.BatchSize
	}
	if o.MaskProb == 0 {
		o.MaskProb = 0.15
	}
	switch {
	case o.Epochs < 0 || o.MaxSteps < 0 || o.BatchSize < 0 || o.GradAccum < 0 || o.ReplayBatchSize < 0:
		return fmt.Errorf("epochs %d, max steps %d, batch size %d, gradient accumulation %d and replay batch size %d must not be negative",
			o.Epochs, o.MaxSteps, o.BatchSize, o.GradAccum, o.ReplayBatchSize)
	case o.LR < 0 || o.WarmupSteps < 0 || o.WarmupRatio < 0 || o.WarmupRatio >= 1 || o.ReplayWeight < 0:
		return fmt.Errorf("learning rate %g, warm-up steps %d, warm-up ratio %g (< 1) and replay weight %g must not be negative",
			o.LR, o.WarmupSteps, o.WarmupRatio, o.ReplayWeight)
	case o.MaskProb <= 0 || o.MaskProb >= 1:
		return fmt.Errorf("mask probability %g must be in (0, 1)", o.MaskProb)
	case o.CheckpointEvery < 0:
		return fmt.Errorf("checkpoint interval %d must not be negative", o.CheckpointEvery)
	}
	return nil
}

// labelledItems turns examples into training items, expanding every mask
// into one mask per answer piece, and lists the examples it cannot use.
func (m *Model) labelledItems(examples []Example) ([]trainItem, []Skipped) {
	var items []trainItem
	var skipped []Skipped
	maskID := int64(m.tok.MaskID())
	for i, ex := range examples {
		skip := func(format string, args ...any) {
			skipped = append(skipped, Skipped{Index: i, Text: ex.Text, Reason: fmt.Sprintf(format, args...)})
		}
		text := m.userText(ex.Text)
		enc, err := m.tok.Encode(text)
		if err != nil {
			skip("tokenize text: %v", err)
			continue
		}
		n := countMasks(enc.IDs, maskID)
		if n == 0 {
			skip("text has no %s", m.tok.MaskToken())
			continue
		}
		if n != len(ex.Answers) {
			skip("text has %d masks but %d answers", n, len(ex.Answers))
			continue
		}
		pieces, reason := m.answerPieces(text, ex.Answers)
		if reason != "" {
			skip("%s", reason)
			continue
		}
		ids, labels := expandMasks(enc.IDs, maskID, pieces)
		prep := m.prepareIDs(ids)
		if prep.err != nil {
			skip("%v", prep.err)
			continue
		}
		if len(prep.ids) > m.cfg.MaxSequenceLength() {
			skip("text has %d tokens, more than the model's %d", len(prep.ids), m.cfg.MaxSequenceLength())
			continue
		}
		items = append(items, trainItem{ids: prep.ids, pos: prep.masks, labels: labels})
	}
	return items, skipped
}

// answerPieces splits every answer into token ids as it reads in place of
// its mask in text (tokenize.AnswerPieces: for byte-level BPE, "Ġread"
// after a space; for Unigram, "▁read" where Metaspace starts a word);
// reason says why an answer cannot be trained on (empty
// when all can).
func (m *Model) answerPieces(text string, answers []string) (pieces [][]int64, reason string) {
	unk, _ := m.tok.IDToToken(m.tok.UNKID())
	all, err := m.tok.AnswerPieces(text, answers)
	if err != nil {
		return nil, fmt.Sprintf("tokenize answers: %v", err)
	}
	for j, a := range answers {
		p := all[j]
		switch {
		case len(p.IDs) == 0:
			return nil, fmt.Sprintf("answer %d %q is empty after tokenization", j+1, a)
		case p.Unknown:
			return nil, fmt.Sprintf("answer %d %q maps to the unknown token %s (pieces %q)", j+1, a, unk, p.Tokens)
		}
		ids := make([]int64, len(p.IDs))
		for k, id := range p.IDs {
			if m.tok.IsSpecial(id) {
				return nil, fmt.Sprintf("answer %d %q contains the special token %s", j+1, a, p.Tokens[k])
			}
			ids[k] = int64(id)
		}
		pieces = append(pieces, ids)
	}
	return pieces, ""
}

// replayPool tokenizes the replay texts, truncated to the model's length.
func (m *Model) replayPool(ctx context.Context, texts []string) ([][]int64, error) {
	maxLen := m.cfg.MaxSequenceLength()
	var pool [][]int64
	for i, t := range texts {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		enc, err := m.tok.Encode(t)
		if err != nil {
			return nil, fmt.Errorf("tokenize replay text %d: %w", i+1, err)
		}
		if len(enc.IDs) <= 2 {
			continue
		}
		ids := make([]int64, 0, min(len(enc.IDs), maxLen))
		for _, id := range enc.IDs {
			ids = append(ids, int64(id))
		}
		if len(ids) > maxLen {
			ids = append(ids[:maxLen-1], ids[len(ids)-1])
		}
		pool = append(pool, ids)
	}
	return pool, nil
}

// mlmMask applies BERT's masking to ids ([CLS] … [SEP]): each non-special
// token is chosen with probability prob (at least one is), and a chosen
// token becomes the mask token (80 %), a random non-special token (10 %) or
// stays (10 %). It returns the new ids, the chosen positions and their
// original tokens.
func (m *Model) mlmMask(ids []int64, prob float64, rng *rand.Rand) trainItem {
	out := append([]int64(nil), ids...)
	var cand []int
	for i, id := range ids {
		if !m.tok.IsSpecial(int(id)) {
			cand = append(cand, i)
		}
	}
	it := trainItem{replay: true}
	if len(cand) == 0 {
		it.ids = out
		return it
	}
	for _, i := range cand {
		if rng.Float64() < prob {
			it.pos = append(it.pos, i)
		}
	}
	if len(it.pos) == 0 {
		it.pos = append(it.pos, cand[rng.IntN(len(cand))])
	}
	V := m.tok.VocabSize()
	for _, p := range it.pos {
		it.labels = append(it.labels, ids[p])
		switch r := rng.Float64(); {
		case r < 0.8:
			out[p] = int64(m.tok.MaskID())
		case r < 0.9:
			for range 100 {
				c := rng.IntN(V)
				if _, ok := m.tok.IDToToken(c); ok && !m.tok.IsSpecial(c) {
					out[p] = int64(c)
					break
				}
			}
		}
	}
	it.ids = out
	return it
}

// fineTuneSource deals labelled examples in per-epoch shuffled order, with
// replay texts masked afresh for every micro-batch.
type fineTuneSource struct {
	m           *Model
	items       []trainItem
	pool        [][]int64
	batch       int
	perEpoch    int
	replayBatch int
	maskProb    float64
	seed        uint64

	perm      []int // order of the epoch permEpoch
	permEpoch int
}

func (s *fineTuneSource) micro(k int64) ([]trainItem, int) {
	epoch := int(k / int64(s.perEpoch))
	off := int(k % int64(s.perEpoch))
	if s.perm == nil || s.permEpoch != epoch {
		s.perm = rand.New(rand.NewPCG(s.seed, uint64(epoch)<<1|1)).Perm(len(s.items))
		s.permEpoch = epoch
	}
	perm := s.perm
	lo, hi := off*s.batch, min((off+1)*s.batch, len(s.items))
	var out []trainItem
	for _, i := range perm[lo:hi] {
		out = append(out, s.items[i])
	}
	if len(s.pool) > 0 {
		rng := rand.New(rand.NewPCG(s.seed, uint64(k)<<1))
		for range s.replayBatch {
			out = append(out, s.m.mlmMask(s.pool[rng.IntN(len(s.pool))], s.maskProb, rng))
		}
	}
	return out, epoch
}

func (s *fineTuneSource) fingerprint(o FineTuneOptions) string {
	h := sha256.New()
	fmt.Fprintf(h, "finetune batch=%d accum=%d epochs=%d max=%d lr=%g warm=%d/%g clip=%g adamw=%+v seed=%d replay=%g/%d/%g\n",
		o.BatchSize, o.GradAccum, o.Epochs, o.MaxSteps, o.LR, o.WarmupSteps, o.WarmupRatio, o.MaxGradNorm, o.AdamW, o.Seed,
		o.ReplayWeight, o.ReplayBatchSize, o.MaskProb)
	hashItems(h, s.items)
	for _, p := range s.pool {
		hashInts(h, p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashItems(h interface{ Write([]byte) (int, error) }, items []trainItem) {
	for _, it := range items {
		hashInts(h, it.ids)
		hashInts(h, it.labels)
	}
}

func hashInts(h interface{ Write([]byte) (int, error) }, v []int64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(len(v)))
	h.Write(b[:])
	for _, x := range v {
		binary.LittleEndian.PutUint64(b[:], uint64(x))
		h.Write(b[:])
	}
}

// stepSeed derives libtorch's seed for one optimizer step, so that dropout
// repeats whether a run is interrupted and resumed or not.
func stepSeed(seed uint64, step int) uint64 {
	x := seed ^ (uint64(step)+1)*0x9e3779b97f4a7c15
	x ^= x >> 31
	return x & (1<<63 - 1)
}

// train runs the optimisation loop shared by FineTune and Pretrain.
func (m *Model) train(ctx context.Context, src batchSource, spec trainSpec, progress func(Progress)) (out trainOutcome, err error) {
	if spec.totalSteps <= 0 {
		return out, errors.New("nothing to train: zero steps")
	}
	if err := m.lock(); err != nil {
		return out, err
	}
	defer m.unlock()
	prevGrad, err := ts.GradSetEnabled(true)
	if err != nil {
		return out, fmt.Errorf("enable gradients: %w", err)
	}
	defer ts.GradSetEnabled(prevGrad)

	params := m.NamedParameters()
	opt, err := newAdamW(params, spec.adamW)
	if err != nil {
		return out, err
	}
	defer opt.drop()
	defer func() {
		// Leave no gradients behind: they hold as much memory as the model.
		ts.GradSetEnabled(false)
		for _, p := range params {
			if g, gerr := p.Tensor.Grad(false); gerr == nil {
				if g.MustDefined() {
					_ = inPlace(g, g.Detach_)
					_ = inPlace(g, g.Zero_)
				}
				g.MustDrop()
			}
		}
		ts.GradSetEnabled(true)
	}()

	step := 0
	if spec.resumeDir != "" {
		st, dir, found, err := readLatest(spec.resumeDir)
		if err != nil {
			return out, err
		}
		if found {
			if err := st.matches(spec); err != nil {
				return out, fmt.Errorf("resume from %s: %w", dir, err)
			}
			if err := m.restore(dir, opt, st); err != nil {
				return out, fmt.Errorf("resume from %s: %w", dir, err)
			}
			step = st.Step
			out.resumedFrom = step
			out.checkpoint = dir
		}
	}
	out.steps = step
	started := time.Now()
	lastSaved := step
	save := func(epoch int, loss float64) error {
		if spec.ckptDir == "" {
			return nil
		}
		dir, err := m.writeCheckpoint(spec, opt, trainerState{
			Kind: spec.kind, Step: step, TotalSteps: spec.totalSteps, Epoch: epoch,
			NextMicroBatch: int64(step) * int64(spec.accum), Seed: spec.seed,
			Fingerprint: spec.fingerprint, Loss: loss, Time: time.Now().UTC().Format(time.RFC3339),
		})
		if err != nil {
			return err
		}
		out.checkpoint = dir
		lastSaved = step
		return nil
	}
	epoch := 0
	for step < spec.totalSteps {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		lr := LinearSchedule(step, spec.warmup, spec.totalSteps, spec.lr)
		if err := torchrt.ManualSeed(stepSeed(spec.seed, step)); err != nil {
			return out, err
		}
		loss := 0.0
		for a := range spec.accum {
			items, ep := src.micro(int64(step)*int64(spec.accum) + int64(a))
			epoch = ep
			l, n, err := m.microStep(items, spec.replayWeight, 1/float64(spec.accum))
			if err != nil {
				return out, fmt.Errorf("step %d: %w", step+1, err)
			}
			loss += l / float64(spec.accum)
			out.tokens += int64(n)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return out, fmt.Errorf("step %d: loss is %g (lower the learning rate)", step+1, loss)
		}
		gradNorm, err := m.optimizerStep(opt, lr, spec.maxGradNorm)
		if err != nil {
			return out, fmt.Errorf("step %d: %w", step+1, err)
		}
		step++
		out.steps = step
		out.finalLoss = loss
		if progress != nil {
			progress(Progress{
				Step: step, TotalSteps: spec.totalSteps, Epoch: epoch, Loss: loss, LR: lr, GradNorm: gradNorm,
				Tokens: out.tokens, TokensPerSec: float64(out.tokens) / time.Since(started).Seconds(),
			})
		}
		if spec.ckptEvery > 0 && step%spec.ckptEvery == 0 && step < spec.totalSteps {
			if err := save(epoch, loss); err != nil {
				return out, err
			}
		}
	}
	if step != lastSaved || out.checkpoint == "" {
		if err := save(epoch, out.finalLoss); err != nil {
			return out, err
		}
	}
	return out, nil
}

// microStep runs forward and backward on one micro-batch, adding
// scale × its loss's gradients to the parameters' gradients. The loss is
// the mean cross-entropy over the labelled positions plus replayWeight
// times the mean over the replay positions. It returns the unscaled loss
// and the number of input tokens.
func (m *Model) microStep(items []trainItem, replayWeight, scale float64) (loss float64, tokens int, err error) {
	defer catch(&err, "training micro-batch")
	T, nLab, nRep := 0, 0, 0
	for _, it := range items {
		T = max(T, len(it.ids))
		tokens += len(it.ids)
		if it.replay {
			nRep += len(it.pos)
		} else {
			nLab += len(it.pos)
		}
	}
	B := len(items)
	idBuf := make([]int64, B*T)
	maskBuf := make([]int64, B*T)
	var flat, targets []int64
	var weights []float32
	pad := int64(m.cfg.PadTokenID)
	for b, it := range items {
		row := idBuf[b*T : (b+1)*T]
		n := copy(row, it.ids)
		for j := n; j < T; j++ {
			row[j] = pad
		}
		for j := range n {
			maskBuf[b*T+j] = 1
		}
		w := 1 / float64(nLab)
		if it.replay {
			w = replayWeight / float64(nRep)
		}
		for k, p := range it.pos {
			flat = append(flat, int64(b*T+p))
			targets = append(targets, it.labels[k])
			weights = append(weights, float32(w*scale))
		}
	}
	if len(flat) == 0 {
		return 0, tokens, nil
	}
	shape := []int64{int64(B), int64(T)}
	var s scope
	defer s.free()
	ids := s.int64s(idBuf, shape, m.device)
	am := s.int64s(maskBuf, shape, m.device)
	fl := s.int64s(flat, []int64{int64(len(flat))}, m.device)
	tg := s.int64s(targets, []int64{int64(len(targets)), 1}, m.device)
	wt := s.float32s(weights, []int64{int64(len(weights))}, m.device)
	h := m.forward(&s, ids, am, nil, true)
	s.drop(ids)
	s.drop(am)
	at := s.consume(h, s.gather(h, fl))
	s.drop(fl)
	logits := m.head(&s, at)
	s.drop(at)
	// The loss on the scope too: the same libtch calls as gotch's
	// LogSoftmax, Gather, View, Mul, Sum and Neg, without their per-op
	// ts.New and leaked result slot.
	logp := s.consume(logits, s.logSoftmax(logits, -1))
	nll := s.consume(logp, s.gatherDim(logp, 1, tg))
	nll = s.consume(nll, s.view(nll, []int64{int64(len(flat))}))
	weighted := s.consume(nll, s.mul(nll, wt))
	total := s.consume(weighted, s.sum(weighted))
	total = s.consume(total, s.neg(total))
	s.backward(total)
	return float64Value(total) / scale, tokens, nil
}

// optimizerStep clips the gradients, applies AdamW with lr and zeroes the
// gradients. It returns the gradients' global norm before clipping.
func (m *Model) optimizerStep(opt *adamW, lr, maxNorm float64) (norm float64, err error) {
	norm, err = opt.apply(lr, maxNorm)
	if err != nil {
		return 0, fmt.Errorf("optimizer step: %w", err)
	}
	return norm, nil
}

// Checkpoint files besides the Hugging Face model files.
const (
	optimizerFile    = "optimizer.safetensors"
	trainerStateFile = "trainer_state.json"
	latestFile       = "latest"
)

// trainerState is trainer_state.json: where a run stands.
type trainerState struct {
	Kind           string  `json:"kind"`
	Step           int     `json:"step"`
	TotalSteps     int     `json:"total_steps"`
	Epoch          int     `json:"epoch"`
	NextMicroBatch int64   `json:"next_micro_batch"`
	Seed           uint64  `json:"seed"`
	Fingerprint    string  `json:"fingerprint"`
	Loss           float64 `json:"loss"`
	Time           string  `json:"time"`
}

func (st trainerState) matches(spec trainSpec) error {
	switch {
	case st.Kind != spec.kind:
		return fmt.Errorf("checkpoint is from a %s run, not %s", st.Kind, spec.kind)
	case st.TotalSteps != spec.totalSteps:
		return fmt.Errorf("checkpoint is from a run of %d steps, this one has %d", st.TotalSteps, spec.totalSteps)
	case st.Seed != spec.seed:
		return fmt.Errorf("checkpoint is from a run with seed %d, this one has %d", st.Seed, spec.seed)
	case st.Fingerprint != spec.fingerprint:
		return errors.New("checkpoint was written for different training data or options")
	case st.Step < 0 || st.Step > st.TotalSteps:
		return fmt.Errorf("checkpoint step %d outside [0, %d]", st.Step, st.TotalSteps)
	}
	return nil
}

// readLatest finds the checkpoint named by dir/latest. found is false when
// dir or its latest file does not exist.
func readLatest(dir string) (st trainerState, ckpt string, found bool, err error) {
	name, err := os.ReadFile(filepath.Join(dir, latestFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, "", false, nil
	}
	if err != nil {
		return st, "", false, fmt.Errorf("read checkpoint pointer: %w", err)
	}
	base := strings.TrimSpace(string(name))
	if base == "" || strings.ContainsAny(base, `/\`) || base == "." || base == ".." {
		return st, "", false, fmt.Errorf("checkpoint pointer %s names %q, not a checkpoint folder", filepath.Join(dir, latestFile), base)
	}
	ckpt = filepath.Join(dir, base)
	data, err := os.ReadFile(filepath.Join(ckpt, trainerStateFile))
	if err != nil {
		return st, "", false, fmt.Errorf("read checkpoint state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, "", false, fmt.Errorf("parse checkpoint state %s: %w", filepath.Join(ckpt, trainerStateFile), err)
	}
	return st, ckpt, true, nil
}

// LatestCheckpoint returns the folder of the newest checkpoint that
// FineTune or Pretrain wrote into dir, its optimizer step, and whether
// there is one. The folder is also a Hugging Face model directory.
func LatestCheckpoint(dir string) (path string, step int, ok bool, err error) {
	st, ckpt, found, err := readLatest(dir)
	if err != nil || !found {
		return "", 0, false, err
	}
	return ckpt, st.Step, true, nil
}

// writeCheckpoint writes the model (Hugging Face files), the optimizer
// moments and st into a new folder under spec.ckptDir, then points
// spec.ckptDir/latest at it and removes older checkpoints. A crash at any
// point leaves the previous checkpoint valid. The caller holds the lock.
func (m *Model) writeCheckpoint(spec trainSpec, opt *adamW, st trainerState) (string, error) {
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("write checkpoint at step %d in %s: %w", st.Step, spec.ckptDir, err)
	}
	if err := os.MkdirAll(spec.ckptDir, 0o755); err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp(spec.ckptDir, ".tmp-checkpoint-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	if err := m.saveLocked(tmp); err != nil {
		return fail(err)
	}
	state, err := opt.stateTensors()
	if err != nil {
		return fail(err)
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, optimizerFile), state, map[string]string{"step": fmt.Sprint(opt.step)}); err != nil {
		return fail(err)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, trainerStateFile), append(data, '\n'), 0o644); err != nil {
		return fail(err)
	}
	base := fmt.Sprintf("checkpoint-%08d", st.Step)
	final := filepath.Join(spec.ckptDir, base)
	if err := os.RemoveAll(final); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(spec.ckptDir, latestFile), []byte(base+"\n"), 0o644); err != nil {
		return fail(err)
	}
	entries, err := os.ReadDir(spec.ckptDir)
	if err != nil {
		return fail(err)
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "checkpoint-") && e.Name() != base {
			os.RemoveAll(filepath.Join(spec.ckptDir, e.Name()))
		}
	}
	return final, nil
}

// saveLocked writes config.json, model.safetensors and the tokenizer files
// to dir while the caller holds the model lock.
func (m *Model) saveLocked(dir string) error {
	if err := SaveConfig(dir, m.cfg); err != nil {
		return err
	}
	var sd []safetensors.Tensor
	for _, s := range m.specs() {
		vals, err := tensorFloat32s(*s.dst)
		if err != nil {
			return fmt.Errorf("read parameter %s: %w", s.name, err)
		}
		t, err := safetensors.FromFloat32s(s.name, safetensors.F32, s.shape, vals)
		if err != nil {
			return err
		}
		sd = append(sd, t)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, SafetensorsFile), sd, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	if m.tok != nil {
		if err := m.tok.Save(dir); err != nil {
			return fmt.Errorf("save tokenizer: %w", err)
		}
	}
	return nil
}

// restore loads the weights and optimizer state of the checkpoint in dir
// into the model and opt. The caller holds the lock.
func (m *Model) restore(dir string, opt *adamW, st trainerState) error {
	if _, err := ts.GradSetEnabled(false); err != nil {
		return err
	}
	defer ts.GradSetEnabled(true)
	raw, err := readSafetensorsState(filepath.Join(dir, SafetensorsFile))
	if err != nil {
		return err
	}
	state, err := resolveState(m.specs(), raw)
	if err != nil {
		return err
	}
	for _, s := range m.specs() {
		if err := copyInto(*s.dst, state[s.name]); err != nil {
			return fmt.Errorf("restore parameter %s: %w", s.name, err)
		}
	}
	f, err := safetensors.ReadFile(filepath.Join(dir, optimizerFile))
	if err != nil {
		return err
	}
	return opt.loadState(f, int64(st.Step))
}
