package mlmengine

import (
	"context"
	"errors"
	"fmt"

	"github.com/clozeloop/clozeloop/activities"
	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/mlm"
)

// Evaluate streams the evaluation set at evalURI (dataset.EvalItem JSONL)
// and evaluates the model at modelURI with mlm's Evaluate, a chunk at a
// time, reporting progress after each chunk. The metrics are those of
// mlm.EvalMetrics, averaged over every answer: "accuracy" (= "top1"),
// "top5", "mrr", "nll" (mean gold negative log-likelihood in nats), and
// the counts "items", "answers" and "skipped". A set with no evaluable
// item is bad data.
func (e *Engine) Evaluate(ctx context.Context, modelURI, evalURI string, progress func(done, total int)) (map[string]float64, error) {
	m, release, err := e.acquire(ctx, modelURI)
	if err != nil {
		return nil, err
	}
	defer release()

	rc, _, err := e.o.Store.Get(ctx, evalURI)
	if err != nil {
		return nil, storeErr(fmt.Sprintf("read evaluation set %s", evalURI), activities.ErrBadData, err)
	}
	defer rc.Close()
	r := dataset.NewEvalReader(rc, evalURI, dataset.Options{})

	var (
		chunk                  []mlm.EvalItem
		done, items, n, skip   int
		top1, top5, rr, nllSum float64
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
			return fmt.Errorf("evaluate %s on %s: wait for the model: %w", modelURI, evalURI, err)
		}
		met, err := m.Evaluate(ctx, chunk, mlm.EvalOptions{BatchSize: e.o.EvalBatchSize})
		endTurn()
		if err != nil {
			return fmt.Errorf("evaluate %s on %s: %w", modelURI, evalURI, err)
		}
		w := float64(met.N)
		top1 += met.Top1 * w
		top5 += met.Top5 * w
		rr += met.MRR * w
		nllSum += met.GoldNLL * w
		n += met.N
		items += met.Items
		skip += met.Skipped
		done += len(chunk)
		chunk = chunk[:0]
		if progress != nil {
			progress(done, -1)
		}
		return nil
	}
	for r.Next() {
		it := r.Record()
		chunk = append(chunk, mlm.EvalItem{ID: it.ID, Text: it.Text, Gold: it.Gold})
		if len(chunk) >= e.o.ChunkSize {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := r.Err(); err != nil {
		var le *dataset.LineError
		if errors.As(err, &le) {
			return nil, fmt.Errorf("%w: evaluation set %s: %w", activities.ErrBadData, evalURI, err)
		}
		return nil, fmt.Errorf("read evaluation set %s: %w", evalURI, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: evaluation set %s has no item the model can evaluate (%d read, %d skipped)", activities.ErrBadData, evalURI, done, skip)
	}
	if skip > 0 {
		e.log.Warn("evaluation items skipped", "eval", evalURI, "model", modelURI, "skipped", skip)
	}
	fn := float64(n)
	return map[string]float64{
		"accuracy": top1 / fn, "top1": top1 / fn, "top5": top5 / fn, "mrr": rr / fn, "nll": nllSum / fn,
		"items": float64(items), "answers": fn, "skipped": float64(skip),
	}, nil
}
