package sim

import (
	"errors"
	"fmt"
	"math"
)

// AULC returns the normalised area under a learning curve: the trapezoid
// area under (labels[i], acc[i]) from the first to the last point, divided
// by labels[last] − labels[0]. For accuracies in [0, 1] it is in [0, 1]: the
// mean accuracy over the label range. A single point gives its accuracy.
// Labels must be strictly increasing.
func AULC(labels, acc []float64) (float64, error) {
	if len(labels) != len(acc) {
		return 0, fmt.Errorf("aulc: %d label counts for %d accuracies", len(labels), len(acc))
	}
	if len(labels) == 0 {
		return 0, errors.New("aulc: empty curve")
	}
	if len(labels) == 1 {
		return acc[0], nil
	}
	var area float64
	for i := 1; i < len(labels); i++ {
		dx := labels[i] - labels[i-1]
		if !(dx > 0) {
			return 0, fmt.Errorf("aulc: labels must increase, got %v then %v", labels[i-1], labels[i])
		}
		area += dx * (acc[i] + acc[i-1]) / 2
	}
	return area / (labels[len(labels)-1] - labels[0]), nil
}

// LabelsToReach returns the number of labels at which the curve first
// reaches target, interpolated linearly between the two points around the
// crossing, and false when it never does.
func LabelsToReach(labels, acc []float64, target float64) (float64, bool) {
	for i := range acc {
		if i >= len(labels) {
			break
		}
		if acc[i] < target {
			continue
		}
		if i == 0 {
			return labels[0], true
		}
		x0, x1, y0, y1 := labels[i-1], labels[i], acc[i-1], acc[i]
		return x0 + (target-y0)/(y1-y0)*(x1-x0), true
	}
	return 0, false
}

// Stat is a mean with its sample standard deviation (n − 1 in the
// denominator; 0 for a single value).
type Stat struct {
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
}

// MeanSD returns the mean and sample standard deviation of v (zero for
// an empty v).
func MeanSD(v []float64) Stat {
	if len(v) == 0 {
		return Stat{}
	}
	var s float64
	for _, x := range v {
		s += x
	}
	m := s / float64(len(v))
	if len(v) == 1 {
		return Stat{Mean: m}
	}
	var ss float64
	for _, x := range v {
		ss += (x - m) * (x - m)
	}
	return Stat{Mean: m, SD: math.Sqrt(ss / float64(len(v)-1))}
}

// Curve is a strategy's learning curve over seeds, round by round: the mean
// labels and the mean and standard deviation of each metric. Rounds that
// not every seed reached are left out.
type Curve struct {
	Labels []float64 `json:"labels"`
	Top1   []Stat    `json:"top1"`
	Top5   []Stat    `json:"top5"`
	MRR    []Stat    `json:"mrr"`
	NLL    []Stat    `json:"nll"`
}

// MeanCurve returns the mean curve of runs.
func MeanCurve(runs []RunResult) Curve {
	var c Curve
	if len(runs) == 0 {
		return c
	}
	n := len(runs[0].Rounds)
	for _, r := range runs[1:] {
		n = min(n, len(r.Rounds))
	}
	for i := 0; i < n; i++ {
		var lab, t1, t5, rr, nll []float64
		for _, r := range runs {
			x := r.Rounds[i]
			lab = append(lab, float64(x.Labels))
			t1 = append(t1, x.Top1)
			t5 = append(t5, x.Top5)
			rr = append(rr, x.MRR)
			nll = append(nll, x.NLL)
		}
		c.Labels = append(c.Labels, MeanSD(lab).Mean)
		c.Top1 = append(c.Top1, MeanSD(t1))
		c.Top5 = append(c.Top5, MeanSD(t5))
		c.MRR = append(c.MRR, MeanSD(rr))
		c.NLL = append(c.NLL, MeanSD(nll))
	}
	return c
}

func means(s []Stat) []float64 {
	out := make([]float64, len(s))
	for i, x := range s {
		out[i] = x.Mean
	}
	return out
}

// VsRandom compares a strategy with random seed by seed: the paired
// differences of the AULCs over the labelled rounds.
type VsRandom struct {
	AULCTop1 PairedDiff `json:"aulc_top1"`
	AULCTop5 PairedDiff `json:"aulc_top5"`
	AULCMRR  PairedDiff `json:"aulc_mrr"`
}

// Summary is one strategy's result over its seeds.
type Summary struct {
	Strategy string `json:"strategy"`
	Seeds    int    `json:"seeds"`
	// AULCTop1, AULCTop5 and AULCMRR are the per-seed normalised AULCs
	// over the labelled rounds (RunAULC): mean and standard deviation.
	AULCTop1 Stat `json:"aulc_top1"`
	AULCTop5 Stat `json:"aulc_top5"`
	AULCMRR  Stat `json:"aulc_mrr"`
	// FinalTop1, FinalTop5, FinalMRR and FinalNLL are the metrics after
	// the last round.
	FinalTop1 Stat `json:"final_top1"`
	FinalTop5 Stat `json:"final_top5"`
	FinalMRR  Stat `json:"final_mrr"`
	FinalNLL  Stat `json:"final_nll"`
	// FinalLabels is the mean number of labels used after the last round.
	FinalLabels float64 `json:"final_labels"`
	// VsRandom is the paired comparison with random over the seeds both
	// ran (absent for random itself and without a random run).
	VsRandom *VsRandom `json:"vs_random,omitempty"`
	// TargetTop1 is the random strategy's final mean top-1 accuracy, the
	// target of the label savings (absent without a random run, or when
	// savings are not meaningful: see SavingsNote).
	TargetTop1 *float64 `json:"target_top1,omitempty"`
	// LabelsToTarget is the labels the strategy's mean top-1 curve needed
	// to reach TargetTop1 (absent: not reached or no target).
	LabelsToTarget *float64 `json:"labels_to_target,omitempty"`
	// LabelSavings is the labels random's own mean curve needed to first
	// reach TargetTop1 (its final label count when the curve rises to the
	// end; fewer when accuracy fell after an early peak) minus
	// LabelsToTarget, so random's own savings are 0; LabelSavingsPct is the
	// same as a percentage of random's labels to the target.
	LabelSavings    *float64 `json:"label_savings,omitempty"`
	LabelSavingsPct *float64 `json:"label_savings_pct,omitempty"`
	// Reached reports whether the strategy reached TargetTop1.
	Reached bool `json:"reached"`
	// SavingsNote says why there are no label savings, when there are
	// none: no random run, or random's final top-1 not above the starting
	// model's (then reaching it means nothing).
	SavingsNote string `json:"savings_note,omitempty"`
	// Bought is the mean over seeds of what the strategy chose.
	Bought Bought `json:"bought"`
	// Time is the mean wall time per round of each phase (seconds).
	Time Timing `json:"mean_round_time"`
	// Curve is the mean learning curve.
	Curve Curve `json:"curve"`
}

// Summarize computes one Summary per strategy, in the given order
// (strategies missing from runs are skipped). The paired comparisons and
// label savings are computed against the strategy named "random" when it
// was run; label savings only when random's final mean top-1 is above the
// starting model's (base).
func Summarize(runs []RunResult, strategies []string, base Accuracy, bopts BootstrapOptions) []Summary {
	by := map[string][]RunResult{}
	for _, r := range runs {
		by[r.Strategy] = append(by[r.Strategy], r)
	}
	var target, randomLabels float64
	haveRandom, savingsOK := false, false
	note := "n/a: no random run to compare with"
	if rr := by["random"]; len(rr) > 0 {
		c := MeanCurve(rr)
		if n := len(c.Labels); n > 0 {
			target, randomLabels, haveRandom = c.Top1[n-1].Mean, c.Labels[n-1], true
			if x, ok := LabelsToReach(c.Labels, means(c.Top1), target); ok {
				randomLabels = x
			}
			if target > base.Top1 {
				savingsOK, note = true, ""
			} else {
				note = fmt.Sprintf("n/a: random's final top-1 %.4f is not above the starting model's %.4f, so reaching it shows nothing", target, base.Top1)
			}
		}
	}
	var out []Summary
	for _, name := range strategies {
		rs := by[name]
		if len(rs) == 0 {
			continue
		}
		s := Summary{Strategy: name, Seeds: len(rs), Curve: MeanCurve(rs), SavingsNote: note}
		var a1, a5, ar, f1, f5, fr, fn, fl []float64
		var bought []Bought
		var tm Timing
		rounds := 0
		for _, r := range rs {
			if len(r.Rounds) == 0 {
				continue
			}
			a1 = append(a1, r.AULCTop1)
			a5 = append(a5, r.AULCTop5)
			ar = append(ar, r.AULCMRR)
			last := r.Rounds[len(r.Rounds)-1]
			f1 = append(f1, last.Top1)
			f5 = append(f5, last.Top5)
			fr = append(fr, last.MRR)
			fn = append(fn, last.NLL)
			fl = append(fl, float64(last.Labels))
			bought = append(bought, r.Bought)
			for _, rr := range r.Rounds {
				tm.Load += rr.Timing.Load
				tm.Score += rr.Timing.Score
				tm.Select += rr.Timing.Select
				tm.FineTune += rr.Timing.FineTune
				tm.Eval += rr.Timing.Eval
				rounds++
			}
		}
		s.AULCTop1, s.AULCTop5, s.AULCMRR = MeanSD(a1), MeanSD(a5), MeanSD(ar)
		s.FinalTop1, s.FinalTop5, s.FinalMRR, s.FinalNLL = MeanSD(f1), MeanSD(f5), MeanSD(fr), MeanSD(fn)
		s.FinalLabels = MeanSD(fl).Mean
		s.Bought = meanBought(bought)
		if rounds > 0 {
			d := float64(rounds)
			s.Time = Timing{Load: tm.Load / d, Score: tm.Score / d, Select: tm.Select / d, FineTune: tm.FineTune / d, Eval: tm.Eval / d}
		}
		if haveRandom && name != "random" {
			s.VsRandom = pairWithRandom(rs, by["random"], bopts)
		}
		if savingsOK {
			t := target
			s.TargetTop1 = &t
			if x, ok := LabelsToReach(s.Curve.Labels, means(s.Curve.Top1), target); ok {
				sav := randomLabels - x
				s.Reached, s.LabelsToTarget, s.LabelSavings = true, &x, &sav
				if randomLabels > 0 {
					pct := 100 * sav / randomLabels
					s.LabelSavingsPct = &pct
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// pairWithRandom compares the runs of a strategy with random's runs of the
// same seeds (nil when they share none).
func pairWithRandom(rs, random []RunResult, bopts BootstrapOptions) *VsRandom {
	bySeed := map[int64]RunResult{}
	for _, r := range random {
		bySeed[r.Seed] = r
	}
	var seeds []int64
	var s1, s5, sr, r1, r5, rr []float64
	for _, r := range rs {
		q, ok := bySeed[r.Seed]
		if !ok || len(r.Rounds) == 0 || len(q.Rounds) == 0 {
			continue
		}
		seeds = append(seeds, r.Seed)
		s1, s5, sr = append(s1, r.AULCTop1), append(s5, r.AULCTop5), append(sr, r.AULCMRR)
		r1, r5, rr = append(r1, q.AULCTop1), append(r5, q.AULCTop5), append(rr, q.AULCMRR)
	}
	if len(seeds) == 0 {
		return nil
	}
	// The lengths match by construction, so Paired cannot fail.
	v := &VsRandom{}
	v.AULCTop1, _ = Paired(seeds, s1, r1, bopts)
	v.AULCTop5, _ = Paired(seeds, s5, r5, bopts)
	v.AULCMRR, _ = Paired(seeds, sr, rr, bopts)
	return v
}
