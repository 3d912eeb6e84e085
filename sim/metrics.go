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
// labels and the mean and standard deviation of the accuracies. Rounds that
// not every seed reached are left out.
type Curve struct {
	Labels []float64 `json:"labels"`
	Top1   []Stat    `json:"top1"`
	Top5   []Stat    `json:"top5"`
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
		var lab, t1, t5 []float64
		for _, r := range runs {
			lab = append(lab, float64(r.Rounds[i].Labels))
			t1 = append(t1, r.Rounds[i].Top1)
			t5 = append(t5, r.Rounds[i].Top5)
		}
		c.Labels = append(c.Labels, MeanSD(lab).Mean)
		c.Top1 = append(c.Top1, MeanSD(t1))
		c.Top5 = append(c.Top5, MeanSD(t5))
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

// Summary is one strategy's result over its seeds.
type Summary struct {
	Strategy string `json:"strategy"`
	Seeds    int    `json:"seeds"`
	// AULCTop1 and AULCTop5 are the per-seed normalised AULCs' mean and
	// standard deviation.
	AULCTop1 Stat `json:"aulc_top1"`
	AULCTop5 Stat `json:"aulc_top5"`
	// FinalTop1 and FinalTop5 are the accuracies after the last round.
	FinalTop1 Stat `json:"final_top1"`
	FinalTop5 Stat `json:"final_top5"`
	// FinalLabels is the mean number of labels used after the last round.
	FinalLabels float64 `json:"final_labels"`
	// TargetTop1 is the random strategy's final mean top-1 accuracy, the
	// target of the label savings (absent without a random run).
	TargetTop1 *float64 `json:"target_top1,omitempty"`
	// LabelsToTarget is the labels the strategy's mean top-1 curve needed
	// to reach TargetTop1 (absent: not reached or no random run).
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
	// Time is the mean wall time per round of each phase (seconds).
	Time Timing `json:"mean_round_time"`
	// Curve is the mean learning curve.
	Curve Curve `json:"curve"`
}

// Summarize computes one Summary per strategy, in the given order
// (strategies missing from runs are skipped). Label savings are computed
// against the strategy named "random" when it was run.
func Summarize(runs []RunResult, strategies []string) []Summary {
	by := map[string][]RunResult{}
	for _, r := range runs {
		by[r.Strategy] = append(by[r.Strategy], r)
	}
	var target, randomLabels float64
	haveRandom := false
	if rr := by["random"]; len(rr) > 0 {
		c := MeanCurve(rr)
		if n := len(c.Labels); n > 0 {
			target, randomLabels, haveRandom = c.Top1[n-1].Mean, c.Labels[n-1], true
			if x, ok := LabelsToReach(c.Labels, means(c.Top1), target); ok {
				randomLabels = x
			}
		}
	}
	var out []Summary
	for _, name := range strategies {
		rs := by[name]
		if len(rs) == 0 {
			continue
		}
		s := Summary{Strategy: name, Seeds: len(rs), Curve: MeanCurve(rs)}
		var a1, a5, f1, f5, fl []float64
		var tm Timing
		rounds := 0
		for _, r := range rs {
			if len(r.Rounds) == 0 {
				continue
			}
			a1 = append(a1, r.AULCTop1)
			a5 = append(a5, r.AULCTop5)
			last := r.Rounds[len(r.Rounds)-1]
			f1 = append(f1, last.Top1)
			f5 = append(f5, last.Top5)
			fl = append(fl, float64(last.Labels))
			for _, rr := range r.Rounds {
				tm.Load += rr.Timing.Load
				tm.Score += rr.Timing.Score
				tm.Select += rr.Timing.Select
				tm.FineTune += rr.Timing.FineTune
				tm.Eval += rr.Timing.Eval
				rounds++
			}
		}
		s.AULCTop1, s.AULCTop5 = MeanSD(a1), MeanSD(a5)
		s.FinalTop1, s.FinalTop5 = MeanSD(f1), MeanSD(f5)
		s.FinalLabels = MeanSD(fl).Mean
		if rounds > 0 {
			d := float64(rounds)
			s.Time = Timing{Load: tm.Load / d, Score: tm.Score / d, Select: tm.Select / d, FineTune: tm.FineTune / d, Eval: tm.Eval / d}
		}
		if haveRandom {
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
