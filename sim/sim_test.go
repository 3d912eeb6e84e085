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
	for _, strategy := range []string{"random", "entropy", "margin", "bald", "kcenter", "hybrid", "surprisal", "entropy:0.5,random:0.5"} {
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

func TestRunUncertaintyBeatsRandomOnFake(t *testing.T) {
	data := fakeData(400)
	res, err := Run(context.Background(), &fakeEngine{gold: data.Gold}, data, testConfig("random", "entropy"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rnd, ent := res.Summary[0], res.Summary[1]
	// The fake's accuracy grows with the value that entropy ranks by.
	if !(ent.AULCTop1.Mean > rnd.AULCTop1.Mean) || !ent.Reached || *ent.LabelSavings <= 0 {
		t.Errorf("entropy AULC %v vs random %v, savings %v", ent.AULCTop1, rnd.AULCTop1, ent.LabelSavings)
	}
	if rnd.AULCTop1.SD == 0 {
		t.Error("random's AULC does not vary over seeds")
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
	if len(sum) != 4 || sum[2][0] != "entropy" || sum[2][12] == "" {
		t.Errorf("summary.csv = %v", sum)
	}
	for _, name := range []string{PlotTop1File, PlotTop5File} {
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
	for _, want := range []string{"strategy", "random", "entropy", "kcenter", "±"} {
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
		write(dir, PoolFile, `{"id":"a","text":"the [MASK] barked"}`+"\n"+`{"id":"b","text":"a [MASK] [MASK] day"}`+"\n")
		write(dir, OracleFile, `{"id":"a","text":"the [MASK] barked","gold":["dog"]}`+"\n"+`{"id":"b","text":"a [MASK] [MASK] day","gold":["very","sunny"]}`+"\n")
		write(dir, EvalFile, `{"id":"e1","text":"she [MASK] home","gold":["ran"]}`+"\n"+`{"id":"e2","text":"x [MASK]","gold":["y"]}`+"\n")
		return dir
	}
	d, err := LoadData(context.Background(), good(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Pool) != 2 || len(d.Eval) != 1 || !reflect.DeepEqual(d.Gold["b"], []string{"very", "sunny"}) {
		t.Errorf("data = %+v", d)
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
			_, err := LoadData(context.Background(), dir, 0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := LoadData(context.Background(), t.TempDir(), 0); err == nil || !strings.Contains(err.Error(), "data build") {
		t.Errorf("missing folder: %v", err)
	}
}
