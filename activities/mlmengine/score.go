package mlmengine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"github.com/clozeloop/clozeloop/acquire"
	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/internal/topn"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/workflows"
)

// maxDiversityItems bounds the items of one shard that the diversity
// strategies (kcenter, hybrid) rank; the others get no score for them.
const maxDiversityItems = 1024

// diversityLimits are the bounds of the diversity strategies within a
// shard: up to items are ranked, by acquire.KCenter with Cap kcenterCap and
// acquire.Hybrid with Factor hybridFactor. While a shard streams by, only
// the candidates (with their embeddings) those strategies would look at
// when given the whole shard are kept: KCenter samples the
// max(kcenterCap, items) candidates with the highest hash of (seed, id),
// Hybrid shortlists the hybridFactor·items most uncertain by entropy.
// Keeping exactly those makes the selection identical to one over the
// whole shard while memory stays bounded.
type diversityLimits struct {
	items, kcenterCap, hybridFactor int
}

// defaultDiversityLimits returns the production limits: maxDiversityItems
// and acquire's defaults.
func defaultDiversityLimits() diversityLimits {
	return diversityLimits{items: maxDiversityItems, kcenterCap: acquire.DefaultKCenterCap, hybridFactor: acquire.DefaultHybridFactor}
}

// maxTargetItems bounds the target sample of the "target" strategy: a
// seeded uniform sample of that many items of the target file is embedded.
const maxTargetItems = 1024

// strategyNeeds says what a set of strategies needs from the model.
type strategyNeeds struct {
	bald, embeddings, target bool
	// domain: the domain evidence of each item's text against the target
	// sample's ("domain", "domain-random").
	domain bool
}

func needsOf(strategies []string) (strategyNeeds, error) {
	var n strategyNeeds
	if len(strategies) == 0 {
		return n, fmt.Errorf("%w: no acquisition strategy asked for", activities.ErrBadData)
	}
	for _, s := range strategies {
		switch s {
		case "entropy", "margin", "least-confidence", "random":
		case "bald":
			n.bald = true
		case "kcenter", "hybrid", "density":
			n.embeddings = true
		case "target", "target-random":
			n.embeddings, n.target = true, true
		case "domain", "domain-random":
			n.domain = true
		default:
			return n, fmt.Errorf("%w: unknown acquisition strategy %q (want entropy, margin, least-confidence, bald, random, kcenter, hybrid, density, target, target-random, domain or domain-random)", activities.ErrBadData, s)
		}
	}
	return n, nil
}

// ScoreShard streams the pool at req.PoolURI, keeps the items of the
// shard (0-based position p with p % NumShards == Shard) that req.Skip does
// not exclude, and scores them with the model at req.ModelURI, a chunk at a
// time. Every item gets one score per strategy, higher picked first:
// entropy (nats), least-confidence (1 − p(top1)), margin (1 − (p(top1) −
// p(top2)), so the smallest gap ranks first), bald (MC-dropout mutual
// information), random (a hash of the seed and the item id, as
// acquire.Random). kcenter and hybrid are set selections; within the shard
// they rank up to 1024 items by acquire.KCenter / acquire.Hybrid over the
// mask embeddings and score them (n − rank + 1) / n, so that merging
// shards interleaves their diverse picks. density is information density
// (acquire.Density): entropy × the mean cosine similarity of the item's
// mask embedding to every scored item of the shard (shards take every
// NumShards-th pool item, so each shard's items are a sample of the whole
// pool), computed exactly from the running mean of the unit embeddings,
// for the 10·1024 most uncertain items by entropy (the others get no
// density score; their entropy bounds it from above). target is entropy ×
// the mean cosine similarity to a seeded sample of up to 1024 items of
// req.TargetURI, embedded by the same model; target-random is the item's
// key in a random draw weighted by that similarity^16
// (acquire.WeightedDrawKey, seeded by req.Seed: the keys of all shards
// merge into one draw over the pool). domain is the item's evidence of
// being from the target, the log-likelihood ratio of its words under a
// unigram model of that target sample against one of the whole pool
// (dataset.DomainScorer, counted in a first pass over the pool, so every
// shard has the same model); domain-random the item's key in a random
// draw weighted by exp(evidence) (acquire.LogWeightedDrawKey, seeded by
// req.Seed): a draw of the pool resampled towards the target's text.
// Items the model cannot score (e.g. masks beyond its length) are left out
// and logged. Suggestions are the model's top 5 for the item's first mask.
//
// ScoreShard returns every scored item, so its memory grows with the
// shard; the ScoreShard activity uses ScoreShardTo, which does not.
func (e *Engine) ScoreShard(ctx context.Context, req activities.ScoreRequest, progress func(done, total int)) ([]activities.ScoredItem, error) {
	var out []activities.ScoredItem
	div, err := e.scanShard(ctx, req, progress, func(it activities.ScoredItem) error {
		out = append(out, it)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for seq, scores := range div {
		for s, v := range scores {
			out[seq].Scores[s] = v
		}
	}
	return out, nil
}

// ScoreShardTo scores the shard as ScoreShard does, but writes every
// scored item to the store at scoresKey (JSONL, the same bytes as the
// activity writes for ScoreShard's result) instead of returning it, and
// keeps only the topM best candidates per strategy
// (activities.TopCollector). Scored items go to a spool file in the cache
// folder as they are produced; the file is uploaded when the shard is
// done. Memory stays flat however large the shard: besides the current
// chunk, only the top candidates and, for kcenter and hybrid, a bounded set
// of candidates with their embeddings are kept.
func (e *Engine) ScoreShardTo(ctx context.Context, req activities.ScoreRequest, scoresKey string, topM int, progress func(done, total int)) (activities.ShardResult, error) {
	var res activities.ShardResult
	spool, err := os.CreateTemp(e.o.CacheDir, "scores-*.jsonl")
	if err != nil {
		return res, fmt.Errorf("score shard %d: spool file: %w", req.Shard, err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	var plain, diverse []string
	for _, s := range req.Strategies {
		if s == "kcenter" || s == "hybrid" || s == "density" {
			diverse = append(diverse, s)
		} else {
			plain = append(plain, s)
		}
	}
	top := activities.NewTopCollector(plain, topM, req.Skip)
	w := bufio.NewWriterSize(spool, 1<<16)
	enc := json.NewEncoder(w)
	div, err := e.scanShard(ctx, req, progress, func(it activities.ScoredItem) error {
		res.Scored++
		top.Add(it)
		if err := enc.Encode(it); err != nil {
			return fmt.Errorf("spool scores: %w", err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if err := w.Flush(); err != nil {
		return res, fmt.Errorf("score shard %d: spool scores: %w", req.Shard, err)
	}
	res.Top = top.Top()
	upload := spool.Name()
	if len(diverse) > 0 {
		final, divTop, err := e.addDiversityScores(ctx, spool, div, diverse, topM, req.Skip)
		if err != nil {
			return res, fmt.Errorf("score shard %d: %w", req.Shard, err)
		}
		defer os.Remove(final)
		upload = final
		for s, c := range divTop {
			res.Top[s] = c
		}
	}
	if _, err := e.o.Store.PutFile(ctx, scoresKey, upload); err != nil {
		return res, fmt.Errorf("score shard %d: write %s: %w", req.Shard, scoresKey, err)
	}
	return res, nil
}

// addDiversityScores copies the spooled scores into a new spool file,
// adding the diversity scores of div (by line number) to their lines, and
// returns that file's path and the best topM candidates of the strategies
// diverse.
func (e *Engine) addDiversityScores(ctx context.Context, spool *os.File, div map[int]map[string]float64, diverse []string, topM int, skip func(string) bool) (string, map[string][]workflows.Candidate, error) {
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return "", nil, fmt.Errorf("rewind spool: %w", err)
	}
	out, err := os.CreateTemp(e.o.CacheDir, "scores-*.jsonl")
	if err != nil {
		return "", nil, fmt.Errorf("spool file: %w", err)
	}
	ok := false
	defer func() {
		out.Close()
		if !ok {
			os.Remove(out.Name())
		}
	}()
	top := activities.NewTopCollector(diverse, topM, skip)
	r := bufio.NewReaderSize(spool, 1<<16)
	w := bufio.NewWriterSize(out, 1<<16)
	enc := json.NewEncoder(w)
	for line := 0; ; line++ {
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return "", nil, err
			}
		}
		b, err := r.ReadBytes('\n')
		if len(b) > 0 {
			scores, has := div[line]
			if !has {
				if _, err := w.Write(b); err != nil {
					return "", nil, fmt.Errorf("spool scores: %w", err)
				}
			} else {
				var it activities.ScoredItem
				if err := json.Unmarshal(bytes.TrimSpace(b), &it); err != nil {
					return "", nil, fmt.Errorf("spooled scores line %d: %w", line+1, err)
				}
				for s, v := range scores {
					it.Scores[s] = v
				}
				top.Add(it)
				if err := enc.Encode(it); err != nil {
					return "", nil, fmt.Errorf("spool scores: %w", err)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, fmt.Errorf("read spooled scores: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return "", nil, fmt.Errorf("spool scores: %w", err)
	}
	if err := out.Close(); err != nil {
		return "", nil, fmt.Errorf("spool scores: %w", err)
	}
	ok = true
	return out.Name(), top.Top(), nil
}

// scanShard scores the shard of req a chunk at a time and hands every
// scored item to emit, in pool order, with its per-item scores (entropy,
// margin, least-confidence, bald, random). The set scores of kcenter and
// hybrid are only known once the whole shard is seen: they are returned
// keyed by the item's position in the emitted sequence.
func (e *Engine) scanShard(ctx context.Context, req activities.ScoreRequest, progress func(done, total int), emit func(activities.ScoredItem) error) (map[int]map[string]float64, error) {
	if req.NumShards <= 0 || req.Shard < 0 || req.Shard >= req.NumShards {
		return nil, fmt.Errorf("%w: shard %d of %d", activities.ErrBadData, req.Shard, req.NumShards)
	}
	needs, err := needsOf(req.Strategies)
	if err != nil {
		return nil, err
	}
	m, release, err := e.acquire(ctx, req.ModelURI)
	if err != nil {
		return nil, err
	}
	defer release()

	rc, _, err := e.o.Store.Get(ctx, req.PoolURI)
	if err != nil {
		return nil, storeErr(fmt.Sprintf("read pool %s", req.PoolURI), activities.ErrBadData, err)
	}
	defer rc.Close()
	r := dataset.NewItemReader(rc, req.PoolURI, dataset.Options{})

	opts := mlm.ScoreOptions{TopK: 5, BatchSize: e.o.ScoreBatchSize, Embeddings: needs.embeddings, Seed: uint64(req.Seed)}
	if needs.bald {
		opts.MCDropout = e.o.MCDropout
	}
	sc, err := newShardScores(req.Strategies, req.Seed, e.div)
	if err != nil {
		return nil, err
	}
	if needs.target {
		if sc.target, err = e.targetCentroid(ctx, m, req); err != nil {
			return nil, err
		}
	}
	if needs.domain {
		if sc.domain, err = e.domainScorer(ctx, req, progress); err != nil {
			return nil, err
		}
	}
	var (
		chunk     []mlm.ScoreItem
		pos, done int
		failed    int
	)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		endTurn, err := e.take(ctx, m, func() {
			if progress != nil {
				progress(done, -1) // waiting for the model: still alive
			}
		})
		if err != nil {
			return fmt.Errorf("score shard %d of %s: wait for the model: %w", req.Shard, req.PoolURI, err)
		}
		scores, err := m.Score(ctx, chunk, opts, nil)
		endTurn()
		if err != nil {
			return fmt.Errorf("score shard %d of %s: %w", req.Shard, req.PoolURI, err)
		}
		items := make([]activities.ScoredItem, 0, len(scores))
		cands := make([]acquire.Candidate, 0, len(scores))
		for i, s := range scores {
			if s.Err != "" {
				failed++
				if failed <= 5 {
					e.log.Warn("pool item cannot be scored; left out", "pool", req.PoolURI, "item", s.ID, "reason", s.Err)
				}
				continue
			}
			item := activities.ScoredItem{ItemID: s.ID, Text: chunk[i].Text, Scores: map[string]float64{}}
			for j, blank := range s.Suggestions {
				for _, sg := range blank {
					item.Suggestions = append(item.Suggestions, workflows.Suggestion{Token: sg.Token, Prob: sg.Score, Mask: j})
				}
			}
			item.Suggestions = workflows.ClipSuggestions(item.Suggestions)
			items = append(items, item)
			cands = append(cands, acquire.Candidate{ID: s.ID, LeastConfidence: s.LeastConfidence, Margin: s.Margin,
				Entropy: s.Entropy, BALD: s.BALD, Embedding: s.Embedding})
		}
		if err := sc.add(ctx, items, cands); err != nil {
			return fmt.Errorf("score shard %d of %s: %w", req.Shard, req.PoolURI, err)
		}
		for _, it := range items {
			if err := emit(it); err != nil {
				return fmt.Errorf("score shard %d of %s: %w", req.Shard, req.PoolURI, err)
			}
		}
		done += len(chunk)
		chunk = chunk[:0]
		if progress != nil {
			progress(done, -1)
		}
		return nil
	}
	for r.Next() {
		p := pos
		pos++
		if p%req.NumShards != req.Shard {
			continue
		}
		it := r.Record()
		if req.Skip != nil && req.Skip(it.ID) {
			continue
		}
		chunk = append(chunk, mlm.ScoreItem{ID: it.ID, Text: it.Text})
		if len(chunk) >= e.o.ChunkSize {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, poolReadErr(req.PoolURI, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if failed > 0 {
		e.log.Warn("pool items left out of scoring", "pool", req.PoolURI, "shard", req.Shard, "count", failed)
	}
	div, err := sc.finish(ctx)
	if err != nil {
		return nil, fmt.Errorf("score shard %d of %s: %w", req.Shard, req.PoolURI, err)
	}
	return div, nil
}

// shardScores computes the strategies' scores of a shard streamed by a
// chunk at a time, holding only bounded state.
type shardScores struct {
	strategies []string
	lim        diversityLimits
	seed       int64
	random     bool // some strategy needs the item's hash (random, kcenter)
	kcenter    *topn.Keeper[kept]
	hybrid     *topn.Keeper[kept]
	// density keeps the shortlist of the density strategy (by entropy);
	// unitSum sums the unit embeddings of every item added.
	density *topn.Keeper[kept]
	unitSum []float64
	// target is the unit centroid of the target sample ("target",
	// "target-random"); byTarget and targetDraw say which of the two are
	// asked for.
	target               []float64
	byTarget, targetDraw bool
	// domain scores the items' text against the target sample's
	// ("domain", "domain-random"); nil when not asked for. domainTop and
	// domainDraw say which of the two are asked for.
	domain                *dataset.DomainScorer
	domainTop, domainDraw bool
	n                     int // items added so far
	dim                   int // embedding length (-1: none seen yet)
}

func newShardScores(strategies []string, seed int64, lim diversityLimits) (*shardScores, error) {
	sc := &shardScores{strategies: strategies, lim: lim, seed: seed, dim: -1}
	for _, s := range strategies {
		switch s {
		case "random":
			sc.random = true
		case "kcenter":
			sc.random = true
			sc.kcenter = topn.New(max(lim.kcenterCap, lim.items), kept.better)
		case "hybrid":
			sc.hybrid = topn.New(lim.hybridFactor*lim.items, kept.better)
		case "density":
			sc.density = topn.New(lim.hybridFactor*lim.items, kept.better)
		case "entropy", "margin", "least-confidence", "bald":
		case "target":
			sc.byTarget = true
		case "target-random":
			sc.targetDraw = true
		case "domain":
			sc.domainTop = true
		case "domain-random":
			sc.domainDraw = true
		default:
			return nil, fmt.Errorf("%w: unknown acquisition strategy %q", activities.ErrBadData, s)
		}
	}
	return sc, nil
}

// add sets the per-item scores of one chunk's items (cands[i] belongs to
// items[i]) and offers them to the diversity keepers.
func (sc *shardScores) add(ctx context.Context, items []activities.ScoredItem, cands []acquire.Candidate) error {
	if len(items) == 0 {
		return nil
	}
	var hash map[string]float64
	if sc.random {
		sel, err := acquire.Random{}.Select(ctx, cands, len(cands), acquire.SelectOptions{Seed: sc.seed})
		if err != nil {
			return fmt.Errorf("random: %w", err)
		}
		hash = make(map[string]float64, len(sel))
		for _, p := range sel {
			hash[p.ID] = p.Score
		}
	}
	for i := range items {
		c := &cands[i]
		for _, s := range sc.strategies {
			var measure acquire.Measure
			switch s {
			case "entropy":
				measure = acquire.Entropy
			case "margin":
				measure = acquire.Margin
			case "least-confidence":
				measure = acquire.LeastConfidence
			case "bald":
				measure = acquire.BALD
			case "random":
				items[i].Scores[s] = hash[c.ID]
			}
			if measure != 0 {
				items[i].Scores[s] = c.Uncertainty(measure)
			}
		}
		if sc.domain != nil {
			ev := sc.domain.Evidence(items[i].Text)
			if sc.domainTop {
				items[i].Scores["domain"] = ev
			}
			if sc.domainDraw {
				items[i].Scores["domain-random"] = acquire.LogWeightedDrawKey(sc.seed, c.ID, ev)
			}
		}
		seq := sc.n
		sc.n++
		if sc.kcenter == nil && sc.hybrid == nil && sc.density == nil && sc.target == nil {
			continue
		}
		if err := sc.checkEmbedding(c); err != nil {
			return err
		}
		if sc.target != nil {
			if len(c.Embedding) != len(sc.target) {
				return fmt.Errorf("target: candidate %q: embedding has %d dimensions, the target sample %d", c.ID, len(c.Embedding), len(sc.target))
			}
			sim := acquire.CentroidSimilarity(c.Embedding, sc.target)
			if sc.byTarget {
				items[i].Scores["target"] = acquire.DensityScore(c.Uncertainty(acquire.Entropy), sim, 1)
			}
			if sc.targetDraw {
				items[i].Scores["target-random"] = acquire.WeightedDrawKey(sc.seed, c.ID, sim, acquire.TargetDrawBeta)
			}
		}
		if sc.density != nil {
			if sc.unitSum == nil {
				sc.unitSum = make([]float64, len(c.Embedding))
			}
			acquire.AddUnit(sc.unitSum, c.Embedding)
			u := c.Uncertainty(acquire.Entropy)
			if math.IsNaN(u) || math.IsInf(u, 0) {
				return fmt.Errorf("density: candidate %q: %s is %v", c.ID, acquire.Entropy, c.Entropy)
			}
			sc.density.Push(kept{key: u, seq: seq, cand: *c})
		}
		if sc.kcenter != nil {
			sc.kcenter.Push(kept{key: hash[c.ID], seq: seq, cand: *c})
		}
		if sc.hybrid != nil {
			u := c.Uncertainty(acquire.Entropy)
			if math.IsNaN(u) || math.IsInf(u, 0) {
				return fmt.Errorf("hybrid: candidate %q: %s is %v", c.ID, acquire.Entropy, c.Entropy)
			}
			sc.hybrid.Push(kept{key: u, seq: seq, cand: *c})
		}
	}
	return nil
}

// checkEmbedding checks what the diversity strategies check of every
// candidate: an embedding of the shard's length with finite components.
func (sc *shardScores) checkEmbedding(c *acquire.Candidate) error {
	if len(c.Embedding) == 0 {
		return fmt.Errorf("candidate %q: no embedding (the strategy needs one)", c.ID)
	}
	if sc.dim < 0 {
		sc.dim = len(c.Embedding)
	} else if len(c.Embedding) != sc.dim {
		return fmt.Errorf("candidate %q: embedding has %d dimensions, others have %d", c.ID, len(c.Embedding), sc.dim)
	}
	for i, x := range c.Embedding {
		if x-x != 0 { // NaN or ±Inf
			return fmt.Errorf("candidate %q: embedding: component %d is %v", c.ID, i, x)
		}
	}
	return nil
}

// finish runs the diversity strategies over the kept candidates and returns
// their scores by item position.
func (sc *shardScores) finish(ctx context.Context) (map[int]map[string]float64, error) {
	div := map[int]map[string]float64{}
	if sc.n == 0 {
		return div, nil
	}
	if sc.density != nil && sc.unitSum != nil {
		centroid := make([]float64, len(sc.unitSum))
		for i, v := range sc.unitSum {
			centroid[i] = v / float64(sc.n)
		}
		for _, e := range sc.density.Items() {
			if div[e.seq] == nil {
				div[e.seq] = map[string]float64{}
			}
			div[e.seq]["density"] = acquire.DensityScore(e.key, acquire.CentroidSimilarity(e.cand.Embedding, centroid), 1)
		}
	}
	k := min(sc.n, sc.lim.items)
	for _, s := range sc.strategies {
		var (
			strat acquire.Strategy
			kp    *topn.Keeper[kept]
		)
		switch s {
		case "kcenter":
			strat, kp = acquire.KCenter{Cap: sc.lim.kcenterCap}, sc.kcenter
		case "hybrid":
			strat, kp = acquire.Hybrid{Factor: sc.lim.hybridFactor}, sc.hybrid
		default:
			continue
		}
		// With the whole shard, KCenter keeps pool order when it needs no
		// sample and otherwise works on its sample best hash first; Hybrid
		// ranks its shortlist itself.
		cands, seqs := keptCandidates(kp, sc.n > kp.Limit())
		sel, err := strat.Select(ctx, cands, k, acquire.SelectOptions{Seed: sc.seed})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		for _, p := range sel {
			seq := seqs[p.Index]
			if div[seq] == nil {
				div[seq] = map[string]float64{}
			}
			div[seq][s] = float64(len(sel)-p.Rank+1) / float64(len(sel))
		}
	}
	return div, nil
}

// kept is a candidate a topn.Keeper holds: its rank key and position in the
// shard.
type kept struct {
	key  float64
	seq  int
	cand acquire.Candidate
}

// better reports whether a ranks before b: higher key, then smaller id.
func (a kept) better(b kept) bool {
	if a.key != b.key {
		return a.key > b.key
	}
	return a.cand.ID < b.cand.ID
}

// keptCandidates returns the candidates k kept, best first when byRank and
// in shard order otherwise, and each one's position in the shard.
func keptCandidates(k *topn.Keeper[kept], byRank bool) ([]acquire.Candidate, []int) {
	var h []kept
	if byRank {
		h = k.Sorted()
	} else {
		h = k.Items()
		sort.Slice(h, func(i, j int) bool { return h[i].seq < h[j].seq })
	}
	cands := make([]acquire.Candidate, len(h))
	seqs := make([]int, len(h))
	for i, e := range h {
		cands[i], seqs[i] = e.cand, e.seq
	}
	return cands, seqs
}

// targetTexts reads the target sample of req (JSONL records with a
// "text" holding [MASK]; blank lines and records without a mask are
// skipped) and returns a seeded uniform sample of up to maxTargetItems of
// their texts: those acquire.Random ranks first (the highest hash of seed
// and text, so independent of order), in that order. strategy names what
// needs it, for the error without a target_uri.
func (e *Engine) targetTexts(ctx context.Context, req activities.ScoreRequest, strategy string) ([]string, error) {
	if req.TargetURI == "" {
		return nil, fmt.Errorf("%w: the %s strategy needs a target sample (run config target_uri)", activities.ErrBadData, strategy)
	}
	rc, _, err := e.o.Store.Get(ctx, req.TargetURI)
	if err != nil {
		return nil, storeErr(fmt.Sprintf("read target sample %s", req.TargetURI), activities.ErrBadData, err)
	}
	defer rc.Close()
	type keyed struct {
		h    float64
		text string
	}
	sample := topn.New(maxTargetItems, func(a, b keyed) bool {
		if a.h != b.h {
			return a.h > b.h
		}
		return a.text < b.text
	})
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("%w: target sample %s line %d: %v", activities.ErrBadData, req.TargetURI, line, err)
		}
		if dataset.CountMasks(rec.Text) == 0 {
			continue
		}
		sel, err := acquire.Random{}.Select(ctx, []acquire.Candidate{{ID: rec.Text}}, 1, acquire.SelectOptions{Seed: req.Seed})
		if err != nil {
			return nil, fmt.Errorf("target sample: %w", err)
		}
		sample.Push(keyed{h: sel[0].Score, text: rec.Text})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read target sample %s: %w", req.TargetURI, err)
	}
	kept := sample.Sorted()
	texts := make([]string, len(kept))
	for i, k := range kept {
		texts[i] = k.text
	}
	return texts, nil
}

// domainScorer returns the domain scorer of the "domain" strategies:
// the target sample's texts (targetTexts) against every text of the pool at
// req.PoolURI, read in full (a pass of word counting, no model), so that
// every shard scores with the same model. progress (may be nil) hears
// that the pass is alive every 10,000 items.
func (e *Engine) domainScorer(ctx context.Context, req activities.ScoreRequest, progress func(done, total int)) (*dataset.DomainScorer, error) {
	texts, err := e.targetTexts(ctx, req, "domain")
	if err != nil {
		return nil, err
	}
	d, err := dataset.NewDomainScorer(texts)
	if err != nil {
		return nil, fmt.Errorf("%w: target sample %s: %w", activities.ErrBadData, req.TargetURI, err)
	}
	rc, _, err := e.o.Store.Get(ctx, req.PoolURI)
	if err != nil {
		return nil, storeErr(fmt.Sprintf("read pool %s", req.PoolURI), activities.ErrBadData, err)
	}
	defer rc.Close()
	r := dataset.NewItemReader(rc, req.PoolURI, dataset.Options{})
	for n := 1; r.Next(); n++ {
		d.Add(r.Record().Text)
		if n%10000 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("count the words of pool %s: %w", req.PoolURI, err)
			}
			if progress != nil {
				progress(0, -1)
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, poolReadErr(req.PoolURI, err)
	}
	return d, nil
}

// poolReadErr says why reading the pool at uri failed: a malformed line
// is bad data (not worth retrying), anything else a read error.
func poolReadErr(uri string, err error) error {
	var le *dataset.LineError
	if errors.As(err, &le) {
		return fmt.Errorf("%w: pool %s: %w", activities.ErrBadData, uri, err)
	}
	return fmt.Errorf("read pool %s: %w", uri, err)
}

// targetCentroid embeds the target sample of req (targetTexts) with m and
// returns the unit centroid of their mask embeddings.
func (e *Engine) targetCentroid(ctx context.Context, m *mlm.Model, req activities.ScoreRequest) ([]float64, error) {
	texts, err := e.targetTexts(ctx, req, "target")
	if err != nil {
		return nil, err
	}
	items := make([]mlm.ScoreItem, len(texts))
	for i, t := range texts {
		items[i] = mlm.ScoreItem{ID: fmt.Sprintf("target-%d", i), Text: t}
	}
	res, err := m.Score(ctx, items, mlm.ScoreOptions{BatchSize: e.o.ScoreBatchSize, Embeddings: true, Seed: uint64(req.Seed)}, nil)
	if err != nil {
		return nil, fmt.Errorf("embed the target sample %s: %w", req.TargetURI, err)
	}
	var embs [][]float32
	for _, r := range res {
		if r.Err == "" && len(r.Embedding) > 0 {
			embs = append(embs, r.Embedding)
		}
	}
	if len(embs) == 0 {
		return nil, fmt.Errorf("%w: target sample %s has no item with [MASK] that the model can read (%d read)", activities.ErrBadData, req.TargetURI, len(texts))
	}
	e.log.Info("target sample embedded", "target", req.TargetURI, "items", len(embs))
	return acquire.UnitCentroid(embs), nil
}
