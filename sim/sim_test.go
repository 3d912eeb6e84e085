package sim

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestOracleNoise(t *testing.T) {
	gold := map[string][]string{}
	for i := 0; i < 4000; i++ {
		gold[fmt.Sprintf("i%d", i)] = []string{fmt.Sprintf("w%d", i%50), fmt.Sprintf("v%d", i%7)}
	}
	tests := []struct {
		name        string
		noise       NoiseOptions
		skip, wrong float64 // expected shares of all items
	}{
		{"perfect", NoiseOptions{}, 0, 0},
		{"skips", NoiseOptions{SkipRate: 0.3}, 0.3, 0},
		{"wrong", NoiseOptions{WrongRate: 0.2}, 0, 0.2},
		{"both", NoiseOptions{SkipRate: 0.5, WrongRate: 0.5}, 0.5, 0.25},
		{"always wrong", NoiseOptions{WrongRate: 1}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := NewOracle(gold, tt.noise, 7)
			if err != nil {
				t.Fatal(err)
			}
			var skipped, wrong int
			for id, g := range gold {
				a, err := o.Ask(id)
				if err != nil {
					t.Fatal(err)
				}
				if again, _ := o.Ask(id); !reflect.DeepEqual(a, again) {
					t.Fatalf("item %s: answers differ between calls: %+v, %+v", id, a, again)
				}
				switch {
				case a.Skipped:
					skipped++
					if len(a.Answers) != 0 {
						t.Fatalf("skipped item %s has answers %v", id, a.Answers)
					}
				case a.Wrong:
					wrong++
					for j := range g {
						if a.Answers[j] == g[j] {
							t.Fatalf("wrong answer %v for %s equals gold %v", a.Answers, id, g)
						}
					}
				default:
					if !reflect.DeepEqual(a.Answers, g) {
						t.Fatalf("answer %v for %s, want gold %v", a.Answers, id, g)
					}
				}
			}
			n := float64(len(gold))
			if math.Abs(float64(skipped)/n-tt.skip) > 0.03 || math.Abs(float64(wrong)/n-tt.wrong) > 0.03 {
				t.Errorf("skipped %.3f wrong %.3f, want about %.2f and %.2f", float64(skipped)/n, float64(wrong)/n, tt.skip, tt.wrong)
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		if _, err := NewOracle(gold, NoiseOptions{SkipRate: 1.5}, 1); err == nil {
			t.Error("skip rate 1.5 accepted")
		}
		if _, err := NewOracle(gold, NoiseOptions{WrongRate: -0.1}, 1); err == nil {
			t.Error("negative wrong rate accepted")
		}
		if _, err := NewOracle(map[string][]string{"a": {"x"}}, NoiseOptions{WrongRate: 0.1}, 1); err == nil {
			t.Error("wrong rate with one gold word accepted")
		}
		o, _ := NewOracle(gold, NoiseOptions{}, 1)
		if _, err := o.Ask("nope"); err == nil {
			t.Error("unknown item answered")
		}
	})
}

func testConfig(strategies ...string) Config {
	return Config{
		Strategies: strategies, Seeds: []int64{1, 2, 3}, Initial: 10, Rounds: 4, Batch: 10, PoolSample: 150,
		FineTune: FineTuneOptions{Epochs: 1, LR: 1e-4, BatchSize: 8},
	}
}

func TestRunExcludesLabelledAndCountsLabels(t *testing.T) {
	for _, strategy := range []string{"random", "entropy", "margin", "bald", "kcenter", "hybrid", "surprisal", "density", "entropy:0.5,random:0.5"} {
		t.Run(strategy, func(t *testing.T) {
			data := fakeData(300)
			eng := &fakeEngine{gold: data.Gold}
			cfg := testConfig(strategy)
			cfg.Seeds = []int64{4}
			res, err := Run(context.Background(), eng, data, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			run := res.Runs[0]
			if len(run.Rounds) != cfg.Rounds+1 {
				t.Fatalf("%d rounds, want %d", len(run.Rounds), cfg.Rounds+1)
			}
			labelled := map[string]bool{}
			for i, r := range run.Rounds {
				if want := cfg.Initial + i*cfg.Batch; r.Labels != want || len(r.Acquired) != map[bool]int{true: cfg.Initial, false: cfg.Batch}[i == 0] {
					t.Fatalf("round %d: %d labels (%d acquired), want %d", i, r.Labels, len(r.Acquired), want)
				}
				for _, id := range r.Acquired {
					if labelled[id] {
						t.Fatalf("round %d re-acquired labelled item %s", i, id)
					}
					labelled[id] = true
				}
			}
			// Every Score call after round 0 saw no item labelled before it,
			// except the call that embeds the labelled set (kcenter, hybrid).
			seen := map[string]bool{}
			for _, id := range run.Rounds[0].Acquired {
				seen[id] = true
			}
			calls := eng.scored
			for r := 1; r < len(run.Rounds); r++ {
				if len(calls) == 0 {
					break // random: no scoring
				}
				pool := calls[0]
				calls = calls[1:]
				if len(pool) != cfg.PoolSample {
					t.Fatalf("round %d scored %d items, want the sample of %d", r, len(pool), cfg.PoolSample)
				}
				for _, id := range pool {
					if seen[id] {
						t.Fatalf("round %d scored labelled item %s", r, id)
					}
				}
				if strings.Contains(strategy, "kcenter") || strings.Contains(strategy, "hybrid") {
					if len(calls) == 0 || len(calls[0]) != len(seen) {
						t.Fatalf("round %d: labelled set of %d not embedded", r, len(seen))
					}
					calls = calls[1:]
				}
				for _, id := range run.Rounds[r].Acquired {
					seen[id] = true
				}
			}
			if strategy == "random" && len(eng.scored) != 0 {
				t.Errorf("random scored the pool %d times", len(eng.scored))
			}
			// From-start mode reloads the model every round after round 0,
			// plus the base evaluation and the run's first load.
			if want := 2 + cfg.Rounds; eng.starts != want {
				t.Errorf("%d model loads, want %d", eng.starts, want)
			}
		})
	}
}

// TestRunPlumbsScoresToSummary checks the plumbing from scores to the
// summary on the fake, whose accuracy grows with the very value its entropy
// reports: entropy must come out ahead of random there, or the scores do
// not reach the strategy or the results do not reach the summary. It says
// nothing about whether entropy sampling is any good on real data.
func TestRunPlumbsScoresToSummary(t *testing.T) {
	data := fakeData(400)
	res, err := Run(context.Background(), &fakeEngine{gold: data.Gold}, data, testConfig("random", "entropy"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rnd, ent := res.Summary[0], res.Summary[1]
	if !(ent.AULCTop1.Mean > rnd.AULCTop1.Mean) || !ent.Reached || *ent.LabelSavings <= 0 {
		t.Errorf("entropy AULC %v vs random %v, savings %v", ent.AULCTop1, rnd.AULCTop1, ent.LabelSavings)
	}
	if rnd.AULCTop1.SD == 0 {
		t.Error("random's AULC does not vary over seeds")
	}
	if rnd.VsRandom != nil {
		t.Error("random is compared with itself")
	}
	v := ent.VsRandom
	if v == nil {
		t.Fatal("no paired comparison with random")
	}
	// Three seeds, entropy ahead in each: 3 wins, sign-test p = 2/8.
	if !reflect.DeepEqual(v.AULCTop1.Seeds, []int64{1, 2, 3}) || v.AULCTop1.Wins != 3 || v.AULCTop1.SignP != 0.25 {
		t.Errorf("paired top-1 = %+v, want seeds 1-3, 3 wins, p 0.25", v.AULCTop1)
	}
	for i, seed := range v.AULCTop1.Seeds {
		var a, b float64
		for _, r := range res.Runs {
			if r.Seed == seed && r.Strategy == "entropy" {
				a = r.AULCTop1
			} else if r.Seed == seed && r.Strategy == "random" {
				b = r.AULCTop1
			}
		}
		if math.Abs(v.AULCTop1.Diffs[i]-(a-b)) > 1e-12 {
			t.Errorf("seed %d: diff %v, want %v − %v", seed, v.AULCTop1.Diffs[i], a, b)
		}
	}
	if !(v.AULCTop1.CILow <= v.AULCTop1.Mean && v.AULCTop1.Mean <= v.AULCTop1.CIHigh) {
		t.Errorf("CI [%v, %v] does not hold the mean %v", v.AULCTop1.CILow, v.AULCTop1.CIHigh, v.AULCTop1.Mean)
	}
	// The fake's eval metrics all move with top-1.
	if ent.FinalMRR.Mean <= rnd.FinalMRR.Mean || ent.FinalNLL.Mean >= rnd.FinalNLL.Mean || ent.AULCMRR.Mean <= rnd.AULCMRR.Mean {
		t.Errorf("MRR/NLL not carried: entropy %+v %+v, random %+v %+v", ent.FinalMRR, ent.FinalNLL, rnd.FinalMRR, rnd.FinalNLL)
	}
	// Bought: 4 rounds of 10 items, sentences "sentence N has a [MASK] here"
	// (5 context words), answers "wN" of 2-3 letters (one fake piece).
	for _, s := range res.Summary {
		if s.Bought.Items != 40 || s.Bought.ContextWords != 5 || s.Bought.MultiPiece != 0 || s.Bought.Sources[""] != 1 {
			t.Errorf("%s bought %+v", s.Strategy, s.Bought)
		}
	}
}

func TestRunTargetSample(t *testing.T) {
	data := fakeData(200)
	var all []EvalItem
	for i := 0; i < 40; i++ {
		all = append(all, EvalItem{ID: fmt.Sprintf("e%02d", i), Text: "the [MASK] ran", Gold: []string{"dog"}})
	}
	for _, tt := range []struct {
		name  string
		limit int
		from  string
		items int
	}{
		{"rest", 10, "eval-rest", 25}, // 30 unmeasured items, sample 25
		{"no rest", 0, "eval", 25},    // every item measured: sample those
		{"small rest", 30, "eval-rest", 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data.Eval, data.EvalRest = EvalSubset(all, tt.limit, 1)
			eng := &fakeEngine{gold: data.Gold}
			cfg := testConfig("target")
			cfg.Seeds, cfg.TargetSample = []int64{1}, 25
			res, err := Run(context.Background(), eng, data, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.TargetFrom != tt.from || res.TargetItems != tt.items {
				t.Errorf("target sample of %d from %q, want %d from %q", res.TargetItems, res.TargetFrom, tt.items, tt.from)
			}
			measured := map[string]bool{}
			for _, it := range data.Eval {
				measured[it.ID] = true
			}
			// Every round embeds the target sample with the current model:
			// a Score call of eval items, measured ones only without a rest.
			calls := 0
			for _, c := range eng.scored {
				if !strings.HasPrefix(c[0], "e") {
					continue
				}
				calls++
				if len(c) != tt.items {
					t.Errorf("target call of %d items", len(c))
				}
				for _, id := range c {
					if measured[id] != (tt.from == "eval") {
						t.Errorf("target item %s: measured %v", id, measured[id])
					}
				}
			}
			if calls != cfg.Rounds {
				t.Errorf("%d target embeddings, want one per round (%d)", calls, cfg.Rounds)
			}
		})
	}
}

// TestRunDomainBuysTargetText runs the domain strategies on a pool whose
// every tenth item reads like the eval set: they buy those items, and
// only those while any are left, without scoring the pool with the model.
func TestRunDomainBuysTargetText(t *testing.T) {
	for _, strategy := range []string{"domain", "domain(by=random)"} {
		t.Run(strategy, func(t *testing.T) {
			data := fakeData(300)
			for i := 0; i < len(data.Pool); i += 10 {
				data.Pool[i].Text = fmt.Sprintf("and the lord spake unto moses, saying %d [MASK]", i)
			}
			data.Eval = nil
			for i := 0; i < 20; i++ {
				data.Eval = append(data.Eval, EvalItem{ID: fmt.Sprintf("e%02d", i), Text: "and the lord said unto [MASK]", Gold: []string{"moses"}})
			}
			eng := &fakeEngine{gold: data.Gold}
			cfg := testConfig(strategy)
			cfg.Seeds, cfg.Rounds, cfg.PoolSample = []int64{2}, 2, 0
			res, err := Run(context.Background(), eng, data, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.TargetItems == 0 {
				t.Errorf("no target sample drawn")
			}
			run := res.Runs[0]
			for r, round := range run.Rounds[1:] {
				for _, id := range round.Acquired {
					var n int
					if _, err := fmt.Sscanf(id, "item%d", &n); err != nil || n%10 != 0 {
						t.Errorf("round %d bought %s, not a target-like item", r+1, id)
					}
				}
			}
			for _, c := range eng.scored {
				if strings.HasPrefix(c[0], "item") {
					t.Errorf("the pool was scored by the model (%d items); domain needs the text only", len(c))
				}
			}
		})
	}
}

func TestRunAULCLeavesOutRoundZero(t *testing.T) {
	tests := []struct {
		name            string
		rounds          []RoundResult
		top1, top5, mrr float64
	}{
		{"round 0 ignored", []RoundResult{
			{Round: 0, Labels: 10, Top1: 0.9, Top5: 0.9, MRR: 0.9},
			{Round: 1, Labels: 20, Top1: 0.1, Top5: 0.2, MRR: 0.3},
			{Round: 2, Labels: 30, Top1: 0.3, Top5: 0.4, MRR: 0.5},
		}, 0.2, 0.3, 0.4},
		{"uneven steps", []RoundResult{
			{Round: 0, Labels: 5, Top1: 0},
			{Round: 1, Labels: 10, Top1: 0},
			{Round: 2, Labels: 20, Top1: 0},
			{Round: 3, Labels: 40, Top1: 0.6},
		}, 0.2, 0, 0}, // area 20·0.3 = 6 over 30 labels
		{"one labelled round", []RoundResult{
			{Round: 0, Labels: 10, Top1: 0.5},
			{Round: 1, Labels: 20, Top1: 0.25, Top5: 0.5, MRR: 0.375},
		}, 0.25, 0.5, 0.375},
		{"round 0 only", []RoundResult{{Round: 0, Labels: 10, Top1: 0.5}}, 0.5, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a1, a5, ar := RunAULC(tt.rounds)
			if math.Abs(a1-tt.top1) > 1e-12 || math.Abs(a5-tt.top5) > 1e-12 || math.Abs(ar-tt.mrr) > 1e-12 {
				t.Errorf("RunAULC = %v, %v, %v; want %v, %v, %v", a1, a5, ar, tt.top1, tt.top5, tt.mrr)
			}
		})
	}
}

func TestRunReplayTexts(t *testing.T) {
	data := fakeData(100)
	data.Replay = []string{"general text one", "general text two"}
	for _, tt := range []struct {
		name   string
		weight float64
		want   []int // replay texts per fine-tune: 0 without replay
	}{
		{"no replay", 0, []int{0, 0, 0}},
		{"replay", 0.5, []int{5 + 2, 10 + 2, 15 + 2}}, // the labelled items so far, then the general texts
	} {
		t.Run(tt.name, func(t *testing.T) {
			eng := &fakeEngine{gold: data.Gold}
			cfg := testConfig("random")
			cfg.Seeds, cfg.Initial, cfg.Batch, cfg.Rounds = []int64{1}, 5, 5, 2
			cfg.FineTune.ReplayWeight = tt.weight
			if _, err := Run(context.Background(), eng, data, cfg, nil); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(eng.replays, tt.want) {
				t.Errorf("replay texts per fine-tune %v, want %v", eng.replays, tt.want)
			}
		})
	}
	got := replayTexts([]Example{{Text: "a [MASK] b [MASK]", Answers: []string{"x", "y z"}}}, []string{"g"}, 0.1)
	if want := []string{"a x b y z", "g"}; !reflect.DeepEqual(got, want) {
		t.Errorf("replayTexts = %q, want %q", got, want)
	}
}

// TestRunPassesAnswers checks that a closed answer set reaches every
// scoring of the pool and the results' record of the configuration.
func TestRunPassesAnswers(t *testing.T) {
	data := fakeData(100)
	eng := &fakeEngine{gold: data.Gold}
	cfg := testConfig("entropy")
	cfg.Seeds, cfg.Initial, cfg.Batch, cfg.Rounds = []int64{1}, 5, 5, 2
	cfg.Answers = []string{"animal", "food"}
	res, err := Run(context.Background(), eng, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(eng.answers) != 2 {
		t.Fatalf("%d scorings of the pool, want 2 (one per round)", len(eng.answers))
	}
	for i, a := range eng.answers {
		if !reflect.DeepEqual(a, cfg.Answers) {
			t.Errorf("scoring %d had answers %q, want %q", i, a, cfg.Answers)
		}
	}
	if !reflect.DeepEqual(res.Config.Answers, cfg.Answers) {
		t.Errorf("results record answers %q, want %q", res.Config.Answers, cfg.Answers)
	}
}

func TestSummarizeSavingsOnlyWhenRandomImproves(t *testing.T) {
	run := func(strategy string, seed int64, top1 ...float64) RunResult {
		r := RunResult{Strategy: strategy, Seed: seed}
		for i, a := range top1 {
			r.Rounds = append(r.Rounds, RoundResult{Round: i, Labels: 10 * (i + 1), Top1: a})
		}
		r.AULCTop1, r.AULCTop5, r.AULCMRR = RunAULC(r.Rounds)
		return r
	}
	runs := []RunResult{run("random", 1, 0.1, 0.2, 0.3), run("entropy", 1, 0.1, 0.3, 0.3)}
	b := BootstrapOptions{Resamples: 100, Seed: 1}
	// Random ends at 0.3, above a start of 0.1: entropy reaches 0.3 at 20
	// labels, random at 30, a saving of 10 labels (33.3 %).
	sum := Summarize(runs, []string{"random", "entropy"}, Accuracy{Top1: 0.1}, b)
	if e := sum[1]; e.LabelsToTarget == nil || *e.LabelsToTarget != 20 || *e.LabelSavings != 10 || e.SavingsNote != "" {
		t.Errorf("savings: %+v", e)
	}
	// A start of 0.3 that random never beats: no savings, a reason.
	sum = Summarize(runs, []string{"random", "entropy"}, Accuracy{Top1: 0.3}, b)
	for _, s := range sum {
		if s.TargetTop1 != nil || s.LabelSavings != nil || !strings.Contains(s.SavingsNote, "not above the starting model") {
			t.Errorf("%s: savings without random improving: %+v", s.Strategy, s)
		}
	}
	// AULC over rounds 1-2: entropy 0.3, random 0.25.
	if d := sum[1].VsRandom.AULCTop1; math.Abs(d.Mean-0.05) > 1e-12 || d.Wins != 1 {
		t.Errorf("paired: %+v", d)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, &Results{Summary: sum, Base: Accuracy{Top1: 0.3}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "n/a") || !strings.Contains(buf.String(), "not above the starting model") {
		t.Errorf("table does not say why there are no savings:\n%s", buf.String())
	}
}

func TestRunReproducible(t *testing.T) {
	strip := func(res *Results) []RunResult {
		runs := append([]RunResult(nil), res.Runs...)
		for i := range runs {
			rounds := append([]RoundResult(nil), runs[i].Rounds...)
			for j := range rounds {
				rounds[j].Timing = Timing{}
			}
			runs[i].Rounds = rounds
		}
		return runs
	}
	data := fakeData(300)
	for _, cfg := range []Config{
		testConfig("random", "hybrid"),
		func() Config {
			c := testConfig("margin")
			c.Seeding, c.Mode, c.Noise = SeedSurprisal, FineTuneContinue, NoiseOptions{WrongRate: 0.2, SkipRate: 0.1}
			return c
		}(),
	} {
		a, err := Run(context.Background(), &fakeEngine{gold: data.Gold}, data, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run(context.Background(), &fakeEngine{gold: data.Gold}, data, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(strip(a), strip(b)) {
			t.Errorf("%v: two runs with the same seeds differ:\n%+v\n%+v", cfg.Strategies, strip(a)[0].Rounds[1], strip(b)[0].Rounds[1])
		}
		if reflect.DeepEqual(a.Runs[0].Rounds[1].Acquired, a.Runs[1].Rounds[1].Acquired) {
			t.Errorf("%v: seeds 1 and 2 acquired the same items", cfg.Strategies)
		}
	}
}

func TestRunNoiseAndSeeding(t *testing.T) {
	data := fakeData(300)
	cfg := testConfig("entropy")
	cfg.Noise = NoiseOptions{SkipRate: 0.5}
	cfg.Seeding = SeedSurprisal
	cfg.Seeds = []int64{1}
	res, err := Run(context.Background(), &fakeEngine{gold: data.Gold}, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := res.Runs[0].Rounds[cfg.Rounds]
	if last.Labels != 50 || last.Answered >= 40 || last.Answered <= 10 {
		t.Errorf("labels %d answered %d, want 50 and about 25", last.Labels, last.Answered)
	}
	// Surprisal seeding takes the most surprising items of the round-0 sample.
	sample := poolSample(data.Pool, nil, cfg.PoolSample, 1, 0)
	best := map[string]bool{}
	m, _ := (&fakeEngine{}).Start(context.Background())
	sur, _ := m.Surprisal(context.Background(), sample)
	for i := range sur {
		n := 0
		for j := range sur {
			if sur[j] > sur[i] {
				n++
			}
		}
		if n < cfg.Initial {
			best[sample[i].ID] = true
		}
	}
	for _, id := range res.Runs[0].Rounds[0].Acquired {
		if !best[id] {
			t.Errorf("surprisal seeding picked %s, not among the %d most surprising", id, cfg.Initial)
		}
	}
}

func TestRunStopsWhenPoolExhausted(t *testing.T) {
	data := fakeData(35)
	cfg := testConfig("entropy")
	cfg.Seeds = []int64{1}
	res, err := Run(context.Background(), &fakeEngine{gold: data.Gold}, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rounds := res.Runs[0].Rounds
	if got := rounds[len(rounds)-1].Labels; got != 35 || len(rounds) != 4 {
		t.Errorf("%d rounds ending at %d labels, want 4 rounds and 35", len(rounds), got)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	data := fakeData(20)
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no strategies", func(c *Config) { c.Strategies = nil }},
		{"unknown strategy", func(c *Config) { c.Strategies = []string{"clairvoyant"} }},
		{"duplicate strategy", func(c *Config) { c.Strategies = []string{"random", "random"} }},
		{"no seeds", func(c *Config) { c.Seeds = nil }},
		{"zero batch", func(c *Config) { c.Batch = 0 }},
		{"bad seeding", func(c *Config) { c.Seeding = "psychic" }},
		{"bad mode", func(c *Config) { c.Mode = "sideways" }},
		{"bad noise", func(c *Config) { c.Noise.SkipRate = 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("random")
			tt.mod(&cfg)
			if _, err := Run(context.Background(), &fakeEngine{gold: data.Gold}, data, cfg, nil); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestWriteOutputs(t *testing.T) {
	data := fakeData(200)
	cfg := testConfig("random", "entropy", "kcenter")
	res, err := Run(context.Background(), &fakeEngine{gold: data.Gold}, data, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := WriteOutputs(dir, res); err != nil {
		t.Fatal(err)
	}
	var back Results
	b, err := os.ReadFile(filepath.Join(dir, ResultsJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(back.Runs) != 9 || len(back.Summary) != 3 {
		t.Errorf("results.json: %d runs, %d summaries; want 9 and 3", len(back.Runs), len(back.Summary))
	}
	readCSV := func(name string) [][]string {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return rows
	}
	rows := readCSV(ResultsCSVFile)
	if len(rows) != 1+3*3*(cfg.Rounds+1) || !reflect.DeepEqual(rows[0], ResultsCSVHeader) {
		t.Errorf("results.csv: %d rows, header %v", len(rows), rows[0])
	}
	sum := readCSV(SummaryCSVFile)
	col := map[string]int{}
	for i, h := range sum[0] {
		col[h] = i
	}
	if len(sum) != 5 || sum[1][0] != "start" || sum[3][0] != "entropy" || sum[3][col["labels_to_target"]] == "" ||
		sum[3][col["vs_random_aulc_top1_sign_p"]] == "" || sum[2][col["vs_random_aulc_top1_sign_p"]] != "" ||
		sum[1][col["final_top1_mean"]] != f64(res.Base.Top1) || sum[3][col["bought_context_words"]] != "5" {
		t.Errorf("summary.csv = %v", sum)
	}
	for _, row := range sum {
		if len(row) != len(SummaryCSVHeader) {
			t.Errorf("summary.csv row of %d cells, header has %d", len(row), len(SummaryCSVHeader))
		}
	}
	for _, name := range []string{PlotTop1File, PlotTop5File, PlotMRRFile, PlotNLLFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 1000 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s: %d bytes, not a PNG", name, len(b))
		}
	}
	var table bytes.Buffer
	if err := WriteTable(&table, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"strategy", "random", "entropy", "kcenter", "±", "Paired with random", "sign-test", "context words"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestLoadData(t *testing.T) {
	write := func(dir, name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := func() string {
		dir := t.TempDir()
		write(dir, PoolFile, `{"id":"a","text":"the [MASK] barked"}`+"\n"+`{"id":"b","text":"a [MASK] [MASK] day","meta":{"source":"bible","n":1}}`+"\n")
		write(dir, OracleFile, `{"id":"a","text":"the [MASK] barked","gold":["dog"]}`+"\n"+`{"id":"b","text":"a [MASK] [MASK] day","gold":["very","sunny"]}`+"\n")
		write(dir, EvalFile, `{"id":"e1","text":"she [MASK] home","gold":["ran"]}`+"\n"+`{"id":"e2","text":"x [MASK]","gold":["y"]}`+"\n")
		return dir
	}
	d, err := LoadData(context.Background(), good(), LoadOptions{EvalLimit: 1, EvalSeed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Pool) != 2 || len(d.Eval) != 1 || len(d.EvalRest) != 1 || d.EvalTotal != 2 || d.EvalSeed != 3 ||
		!reflect.DeepEqual(d.Gold["b"], []string{"very", "sunny"}) {
		t.Errorf("data = %+v", d)
	}
	if d.Pool[0].Source != "" || d.Pool[1].Source != "bible" {
		t.Errorf("sources %q, %q; want \"\" and \"bible\" from meta.source", d.Pool[0].Source, d.Pool[1].Source)
	}
	bad := []struct {
		name, file, content, want string
	}{
		{"missing gold", OracleFile, `{"id":"a","text":"the [MASK] barked","gold":["dog"]}` + "\n", "no gold answer"},
		{"mask count", OracleFile, `{"id":"a","text":"the [MASK] barked","gold":["dog"]}` + "\n" + `{"id":"b","text":"a [MASK] day","gold":["very"]}` + "\n", "2 masks but 1 gold"},
		{"empty eval", EvalFile, "", "no items"},
		{"malformed pool", PoolFile, "{not json\n", PoolFile},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			dir := good()
			write(dir, tt.file, tt.content)
			_, err := LoadData(context.Background(), dir, LoadOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := LoadData(context.Background(), t.TempDir(), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "data build") {
		t.Errorf("missing folder: %v", err)
	}
}

func TestEvalSubset(t *testing.T) {
	var items []EvalItem
	for _, pos := range []string{"n", "v", "a", "r"} {
		for i := 0; i < 250; i++ {
			items = append(items, EvalItem{ID: fmt.Sprintf("%s%03d", pos, i), Text: "x [MASK]", Gold: []string{pos}})
		}
	}
	a, rest := EvalSubset(items, 100, 1)
	b, _ := EvalSubset(items, 100, 1)
	c, _ := EvalSubset(items, 100, 2)
	if len(a) != 100 || len(rest) != 900 || !reflect.DeepEqual(a, b) {
		t.Fatalf("subset of %d (rest %d), or not the same twice", len(a), len(rest))
	}
	if reflect.DeepEqual(a, items[:100]) || reflect.DeepEqual(a, c) {
		t.Error("the subset is the first 100 items, or does not depend on the seed")
	}
	// Every part of the ordered file is represented (the first 100 would
	// be nouns only), and subset and rest split the items in file order.
	parts := map[string]int{}
	seen := map[string]bool{}
	for _, it := range a {
		parts[it.Gold[0]]++
		seen[it.ID] = true
	}
	for _, pos := range []string{"n", "v", "a", "r"} {
		if parts[pos] < 10 {
			t.Errorf("%d items of part %s in the subset, want about 25", parts[pos], pos)
		}
	}
	for _, it := range rest {
		if seen[it.ID] {
			t.Errorf("%s in both subset and rest", it.ID)
		}
	}
	pos := map[string]int{}
	for i, it := range items {
		pos[it.ID] = i
	}
	for i := 1; i < len(a); i++ {
		if pos[a[i-1].ID] >= pos[a[i].ID] {
			t.Errorf("subset not in file order at %d", i)
		}
	}
	// The subset does not depend on the file's order.
	rev := append([]EvalItem(nil), items...)
	slices.Reverse(rev)
	r, _ := EvalSubset(rev, 100, 1)
	ids := func(v []EvalItem) []string {
		var out []string
		for _, it := range v {
			out = append(out, it.ID)
		}
		sort.Strings(out)
		return out
	}
	if !reflect.DeepEqual(ids(r), ids(a)) {
		t.Error("the subset depends on the items' order")
	}
	if all, rest := EvalSubset(items, 0, 1); len(all) != 1000 || rest != nil {
		t.Error("limit 0 does not keep everything")
	}
	if all, _ := EvalSubset(items, 5000, 1); len(all) != 1000 {
		t.Error("a limit above the size does not keep everything")
	}
}

func TestLoadReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raw.txt")
	var lines []string
	for i := 0; i < 50; i++ {
		lines = append(lines, fmt.Sprintf("line %02d", i))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	all, err := LoadReplay(context.Background(), path, 0, 1)
	if err != nil || !reflect.DeepEqual(all, lines) {
		t.Fatalf("all lines: %v, %v", err, all)
	}
	a, _ := LoadReplay(context.Background(), path, 10, 1)
	b, _ := LoadReplay(context.Background(), path, 10, 1)
	if len(a) != 10 || !reflect.DeepEqual(a, b) || reflect.DeepEqual(a, lines[:10]) || !sort.StringsAreSorted(a) {
		t.Errorf("sample of 10: %v", a)
	}
	empty := filepath.Join(t.TempDir(), "empty.txt")
	if err := os.WriteFile(empty, []byte("\n \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadReplay(context.Background(), empty, 0, 1); err == nil {
		t.Error("an empty replay file accepted")
	}
}
