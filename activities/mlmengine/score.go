package mlmengine

import (
	"context"
	"errors"
	"fmt"

	"github.com/clozeloop/clozeloop/acquire"
	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/workflows"
)

// maxDiversityItems bounds the items of one shard that the diversity
// strategies (kcenter, hybrid) rank; the others get no score for them.
const maxDiversityItems = 1024

// strategyNeeds says what a set of strategies needs from the model.
type strategyNeeds struct {
	bald, embeddings bool
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
		case "kcenter", "hybrid":
			n.embeddings = true
		default:
			return n, fmt.Errorf("%w: unknown acquisition strategy %q (want entropy, margin, least-confidence, bald, random, kcenter or hybrid)", activities.ErrBadData, s)
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
// shards interleaves their diverse picks. Items the model cannot score
// (e.g. masks beyond its length) are left out and logged. Suggestions are
// the model's top 5 for the item's first mask.
func (e *Engine) ScoreShard(ctx context.Context, req activities.ScoreRequest, progress func(done, total int)) ([]activities.ScoredItem, error) {
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
	var (
		out       []activities.ScoredItem
		cands     []acquire.Candidate
		chunk     []mlm.ScoreItem
		pos, done int
		failed    int
	)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		scores, err := m.Score(ctx, chunk, opts, nil)
		if err != nil {
			return fmt.Errorf("score shard %d of %s: %w", req.Shard, req.PoolURI, err)
		}
		for i, s := range scores {
			if s.Err != "" {
				failed++
				if failed <= 5 {
					e.log.Warn("pool item cannot be scored; left out", "pool", req.PoolURI, "item", s.ID, "reason", s.Err)
				}
				continue
			}
			item := activities.ScoredItem{ItemID: s.ID, Text: chunk[i].Text, Scores: map[string]float64{}}
			if len(s.Suggestions) > 0 {
				for _, sg := range s.Suggestions[0] {
					item.Suggestions = append(item.Suggestions, workflows.Suggestion{Token: sg.Token, Prob: sg.Score})
				}
			}
			out = append(out, item)
			cands = append(cands, acquire.Candidate{ID: s.ID, LeastConfidence: s.LeastConfidence, Margin: s.Margin,
				Entropy: s.Entropy, BALD: s.BALD, Embedding: s.Embedding})
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
		var le *dataset.LineError
		if errors.As(err, &le) {
			return nil, fmt.Errorf("%w: pool %s: %w", activities.ErrBadData, req.PoolURI, err)
		}
		return nil, fmt.Errorf("read pool %s: %w", req.PoolURI, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if failed > 0 {
		e.log.Warn("pool items left out of scoring", "pool", req.PoolURI, "shard", req.Shard, "count", failed)
	}
	if err := fillScores(ctx, out, cands, req.Strategies, req.Seed); err != nil {
		return nil, fmt.Errorf("score shard %d of %s: %w", req.Shard, req.PoolURI, err)
	}
	return out, nil
}

// fillScores sets items[i].Scores[strategy] from cands[i] (same order).
func fillScores(ctx context.Context, items []activities.ScoredItem, cands []acquire.Candidate, strategies []string, seed int64) error {
	if len(items) == 0 {
		return nil
	}
	index := make(map[string]int, len(cands))
	for i, c := range cands {
		index[c.ID] = i
	}
	for _, s := range strategies {
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
		}
		if measure != 0 {
			for i := range cands {
				items[i].Scores[s] = cands[i].Uncertainty(measure)
			}
			continue
		}
		var (
			strat acquire.Strategy
			k     = len(cands)
			byRnk bool
		)
		switch s {
		case "random":
			strat = acquire.Random{}
		case "kcenter":
			strat, k, byRnk = acquire.KCenter{}, min(k, maxDiversityItems), true
		case "hybrid":
			strat, k, byRnk = acquire.Hybrid{}, min(k, maxDiversityItems), true
		default:
			return fmt.Errorf("%w: unknown acquisition strategy %q", activities.ErrBadData, s)
		}
		sel, err := strat.Select(ctx, cands, k, acquire.SelectOptions{Seed: seed})
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		for _, p := range sel {
			score := p.Score
			if byRnk {
				score = float64(len(sel)-p.Rank+1) / float64(len(sel))
			}
			items[index[p.ID]].Scores[s] = score
		}
	}
	return nil
}
