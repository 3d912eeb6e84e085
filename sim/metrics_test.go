package sim

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestAULC(t *testing.T) {
	tests := []struct {
		name    string
		labels  []float64
		acc     []float64
		want    float64
		wantErr bool
	}{
		{"flat", []float64{10, 20, 30}, []float64{0.5, 0.5, 0.5}, 0.5, false},
		{"linear", []float64{0, 100}, []float64{0, 1}, 0.5, false},
		// (10·(0.2+0.4)/2 + 20·(0.4+0.6)/2) / 30 = (3 + 10) / 30
		{"uneven steps", []float64{10, 20, 40}, []float64{0.2, 0.4, 0.6}, 13.0 / 30, false},
		// (20·(0.1+0.5)/2 + 20·(0.5+0.3)/2) / 40 = (6 + 8) / 40
		{"up and down", []float64{20, 40, 60}, []float64{0.1, 0.5, 0.3}, 0.35, false},
		{"single point", []float64{20}, []float64{0.42}, 0.42, false},
		{"empty", nil, nil, 0, true},
		{"length mismatch", []float64{1, 2}, []float64{0.1}, 0, true},
		{"labels not increasing", []float64{10, 10}, []float64{0.1, 0.2}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AULC(tt.labels, tt.acc)
			if (err != nil) != tt.wantErr {
				t.Fatalf("AULC error = %v, want error %v", err, tt.wantErr)
			}
			if !near(got, tt.want) {
				t.Errorf("AULC = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLabelsToReach(t *testing.T) {
	tests := []struct {
		name   string
		labels []float64
		acc    []float64
		target float64
		want   float64
		ok     bool
	}{
		{"interpolated", []float64{20, 40, 60}, []float64{0.1, 0.3, 0.5}, 0.4, 50, true},
		{"exact point", []float64{20, 40, 60}, []float64{0.1, 0.3, 0.5}, 0.3, 40, true},
		{"already at start", []float64{20, 40}, []float64{0.6, 0.7}, 0.5, 20, true},
		{"first crossing wins", []float64{10, 20, 30, 40}, []float64{0.1, 0.5, 0.2, 0.6}, 0.3, 15, true},
		{"never", []float64{20, 40}, []float64{0.1, 0.2}, 0.3, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := LabelsToReach(tt.labels, tt.acc, tt.target)
			if ok != tt.ok || !near(got, tt.want) {
				t.Errorf("LabelsToReach = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestMeanSD(t *testing.T) {
	tests := []struct {
		v        []float64
		mean, sd float64
	}{
		{nil, 0, 0},
		{[]float64{3}, 3, 0},
		{[]float64{1, 2, 3, 4}, 2.5, math.Sqrt(5.0 / 3)},
		{[]float64{2, 4, 4, 4, 5, 5, 7, 9}, 5, math.Sqrt(32.0 / 7)},
	}
	for _, tt := range tests {
		got := MeanSD(tt.v)
		if !near(got.Mean, tt.mean) || !near(got.SD, tt.sd) {
			t.Errorf("MeanSD(%v) = %+v, want mean %v sd %v", tt.v, got, tt.mean, tt.sd)
		}
	}
}

func mkRun(strategy string, seed int64, labels []int, top1 []float64) RunResult {
	r := RunResult{Strategy: strategy, Seed: seed}
	xs := make([]float64, len(labels))
	for i := range labels {
		r.Rounds = append(r.Rounds, RoundResult{Round: i, Labels: labels[i], Top1: top1[i], Top5: top1[i] + 0.1})
		xs[i] = float64(labels[i])
	}
	r.AULCTop1, _ = AULC(xs, top1)
	r.AULCTop5, _ = AULC(xs, r5(top1))
	return r
}

func r5(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x + 0.1
	}
	return out
}

func TestSummarize(t *testing.T) {
	labels := []int{20, 40, 60}
	runs := []RunResult{
		mkRun("random", 1, labels, []float64{0.1, 0.2, 0.3}),
		mkRun("random", 2, labels, []float64{0.1, 0.2, 0.5}), // random's final mean: 0.4
		mkRun("entropy", 1, labels, []float64{0.1, 0.4, 0.5}),
		mkRun("entropy", 2, labels, []float64{0.1, 0.6, 0.7}), // mean curve 0.1, 0.5, 0.6: reaches 0.4 at 20+20·0.3/0.4 = 35
		mkRun("margin", 1, labels, []float64{0.1, 0.1, 0.2}),
	}
	sums := Summarize(runs, []string{"random", "entropy", "margin", "absent"}, Accuracy{Top1: 0.05}, BootstrapOptions{Resamples: 200, Seed: 1})
	if len(sums) != 3 {
		t.Fatalf("got %d summaries, want 3", len(sums))
	}
	rnd, ent, mar := sums[0], sums[1], sums[2]
	if rnd.Strategy != "random" || ent.Strategy != "entropy" || mar.Strategy != "margin" {
		t.Fatalf("order: %s %s %s", rnd.Strategy, ent.Strategy, mar.Strategy)
	}
	if rnd.TargetTop1 == nil || !near(*rnd.TargetTop1, 0.4) {
		t.Fatalf("target = %v, want 0.4", rnd.TargetTop1)
	}
	// random's mean curve 0.1, 0.2, 0.4 reaches 0.4 at its last point.
	if !rnd.Reached || !near(*rnd.LabelsToTarget, 60) || !near(*rnd.LabelSavings, 0) {
		t.Errorf("random: reached %v at %v savings %v, want 60 and 0", rnd.Reached, rnd.LabelsToTarget, rnd.LabelSavings)
	}
	if !ent.Reached || !near(*ent.LabelsToTarget, 35) || !near(*ent.LabelSavings, 25) || !near(*ent.LabelSavingsPct, 100*25.0/60) {
		t.Errorf("entropy: reached %v at %v savings %v (%v%%), want 35, 25", ent.Reached, *ent.LabelsToTarget, *ent.LabelSavings, *ent.LabelSavingsPct)
	}
	if mar.Reached || mar.LabelsToTarget != nil || mar.LabelSavings != nil {
		t.Errorf("margin should not reach the target: %+v", mar)
	}
	// entropy AULCs: seed 1 (20·0.25 + 20·0.45)/40 = 0.35, seed 2 (20·0.35+20·0.65)/40 = 0.5.
	if !near(ent.AULCTop1.Mean, 0.425) || !near(ent.AULCTop1.SD, math.Sqrt(2*0.075*0.075)) {
		t.Errorf("entropy AULC = %+v, want 0.425 ± %v", ent.AULCTop1, math.Sqrt(2*0.075*0.075))
	}
	if !near(ent.FinalTop1.Mean, 0.6) || !near(ent.FinalLabels, 60) || ent.Seeds != 2 {
		t.Errorf("entropy final = %+v labels %v seeds %d", ent.FinalTop1, ent.FinalLabels, ent.Seeds)
	}
	if len(ent.Curve.Labels) != 3 || !near(ent.Curve.Top1[1].Mean, 0.5) {
		t.Errorf("entropy curve = %+v", ent.Curve)
	}
	// Without a random run there is no target.
	for _, s := range Summarize(runs[2:], []string{"entropy"}, Accuracy{}, BootstrapOptions{}) {
		if s.TargetTop1 != nil || s.Reached {
			t.Errorf("no random run, but target %v reached %v", s.TargetTop1, s.Reached)
		}
	}
}

// When accuracy falls after the first round (fine-tuning hurt), random's
// savings are still 0 and the others are measured against the labels
// random needed to first reach its own final accuracy, not its last count.
func TestSummarizeFallingCurves(t *testing.T) {
	labels := []int{20, 40, 60}
	tests := []struct {
		name       string
		top1       []float64
		reached    bool
		labelsTo   float64
		savings    float64
		savingsPct float64
	}{
		{"random itself", []float64{0.3, 0.25, 0.2}, true, 20, 0, 0},
		{"below at the start, reaches later", []float64{0.1, 0.2, 0.1}, true, 40, -20, -100},
		{"never reaches", []float64{0.1, 0.15, 0.1}, false, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs := []RunResult{mkRun("random", 1, labels, []float64{0.3, 0.25, 0.2}), mkRun("other", 1, labels, tc.top1)}
			sums := Summarize(runs, []string{"random", "other"}, Accuracy{Top1: 0.1}, BootstrapOptions{Resamples: 200, Seed: 1})
			s := sums[1]
			if tc.name == "random itself" {
				s = sums[0]
			}
			if s.Reached != tc.reached {
				t.Fatalf("reached = %v, want %v", s.Reached, tc.reached)
			}
			if !tc.reached {
				if s.LabelSavings != nil {
					t.Errorf("savings %v for a strategy that never reached the target", *s.LabelSavings)
				}
				return
			}
			if !near(*s.LabelsToTarget, tc.labelsTo) || !near(*s.LabelSavings, tc.savings) || !near(*s.LabelSavingsPct, tc.savingsPct) {
				t.Errorf("labels to target %v savings %v (%v%%), want %v, %v (%v%%)",
					*s.LabelsToTarget, *s.LabelSavings, *s.LabelSavingsPct, tc.labelsTo, tc.savings, tc.savingsPct)
			}
		})
	}
}

func TestMeanCurveShortestRun(t *testing.T) {
	c := MeanCurve([]RunResult{
		mkRun("x", 1, []int{10, 20, 30}, []float64{0.1, 0.2, 0.3}),
		mkRun("x", 2, []int{10, 20}, []float64{0.3, 0.4}),
	})
	if len(c.Labels) != 2 || !near(c.Top1[1].Mean, 0.3) {
		t.Errorf("curve = %+v, want the two common rounds", c)
	}
}
