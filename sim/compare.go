package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
)

// ReadResults reads the results.json a simulation wrote; path is the file
// or the output folder holding it.
func ReadResults(path string) (*Results, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "results.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read simulation results: %w", err)
	}
	var res Results
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("read simulation results %s: %w", path, err)
	}
	return &res, nil
}

// Comparison pairs one strategy's runs in two simulations seed by seed:
// every difference is A's value minus B's.
type Comparison struct {
	Strategy  string     `json:"strategy"`
	AULCTop1  PairedDiff `json:"aulc_top1"`
	AULCTop5  PairedDiff `json:"aulc_top5"`
	AULCMRR   PairedDiff `json:"aulc_mrr"`
	FinalTop1 PairedDiff `json:"final_top1"`
	FinalTop5 PairedDiff `json:"final_top5"`
}

// Compare pairs the runs of every strategy that simulations a and b both
// ran, on the seeds both ran it with, to measure what differs between the
// two (an adaptation phase, a fine-tune recipe, a pool). The simulations
// must measure the same thing: the same eval subset, initial set size,
// batch and number of rounds.
func Compare(a, b *Results, opts BootstrapOptions) ([]Comparison, error) {
	ca, cb := a.Config, b.Config
	switch {
	case a.EvalItems != b.EvalItems || a.EvalTotal != b.EvalTotal || a.EvalSeed != b.EvalSeed:
		return nil, fmt.Errorf("compare simulations: they evaluate on different sets (%d of %d items, seed %d against %d of %d, seed %d)",
			a.EvalItems, a.EvalTotal, a.EvalSeed, b.EvalItems, b.EvalTotal, b.EvalSeed)
	case ca.Initial != cb.Initial || ca.Batch != cb.Batch || ca.Rounds != cb.Rounds:
		return nil, fmt.Errorf("compare simulations: different label schedules (initial %d, batch %d, %d rounds against %d, %d, %d)",
			ca.Initial, ca.Batch, ca.Rounds, cb.Initial, cb.Batch, cb.Rounds)
	}
	runsOf := func(res *Results, strategy string) map[int64]RunResult {
		m := map[int64]RunResult{}
		for _, r := range res.Runs {
			if r.Strategy == strategy && len(r.Rounds) > 0 {
				m[r.Seed] = r
			}
		}
		return m
	}
	var out []Comparison
	for _, s := range ca.Strategies {
		if !slices.Contains(cb.Strategies, s) {
			continue
		}
		ra, rb := runsOf(a, s), runsOf(b, s)
		var seeds []int64
		for seed := range ra {
			if _, ok := rb[seed]; ok {
				seeds = append(seeds, seed)
			}
		}
		slices.Sort(seeds)
		if len(seeds) == 0 {
			continue
		}
		metric := func(get func(RunResult) float64) (PairedDiff, error) {
			x, y := make([]float64, len(seeds)), make([]float64, len(seeds))
			for i, seed := range seeds {
				x[i], y[i] = get(ra[seed]), get(rb[seed])
			}
			return Paired(seeds, x, y, opts)
		}
		last := func(r RunResult) RoundResult { return r.Rounds[len(r.Rounds)-1] }
		c := Comparison{Strategy: s}
		for _, m := range []struct {
			dst *PairedDiff
			get func(RunResult) float64
		}{
			{&c.AULCTop1, func(r RunResult) float64 { return r.AULCTop1 }},
			{&c.AULCTop5, func(r RunResult) float64 { return r.AULCTop5 }},
			{&c.AULCMRR, func(r RunResult) float64 { return r.AULCMRR }},
			{&c.FinalTop1, func(r RunResult) float64 { return last(r).Top1 }},
			{&c.FinalTop5, func(r RunResult) float64 { return last(r).Top5 }},
		} {
			d, err := metric(m.get)
			if err != nil {
				return nil, fmt.Errorf("compare %s: %w", s, err)
			}
			*m.dst = d
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("compare simulations: no strategy ran with the same seed in both (A: %v, B: %v)", ca.Strategies, cb.Strategies)
	}
	return out, nil
}

// WriteComparison prints the comparisons as a table: per strategy and
// metric the mean difference A − B, its 95% bootstrap interval,
// wins/losses/ties of A and the sign-test p-value.
func WriteComparison(w io.Writer, a, b *Results, cmp []Comparison) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "starting model\tA: top-1 %.4f, top-5 %.4f\tB: top-1 %.4f, top-5 %.4f\n", a.Base.Top1, a.Base.Top5, b.Base.Top1, b.Base.Top5)
	fmt.Fprintln(tw, "A − B, seed by seed: mean difference [95% bootstrap CI], wins/losses/ties of A, two-sided sign-test p")
	fmt.Fprintln(tw, "strategy\tseeds\tmetric\tΔ mean [95% CI]\tW/L/T\tp")
	for _, c := range cmp {
		for _, m := range []struct {
			name string
			d    PairedDiff
		}{
			{"AULC top-1", c.AULCTop1}, {"AULC top-5", c.AULCTop5}, {"AULC MRR", c.AULCMRR},
			{"final top-1", c.FinalTop1}, {"final top-5", c.FinalTop5},
		} {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%+.4f [%+.4f, %+.4f]\t%d/%d/%d\t%.3g\n", c.Strategy, len(m.d.Seeds), m.name,
				m.d.Mean, m.d.CILow, m.d.CIHigh, m.d.Wins, m.d.Losses, m.d.Ties, m.d.SignP)
		}
	}
	return tw.Flush()
}
