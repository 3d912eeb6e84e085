package sim

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"github.com/clozeloop/clozeloop/internal/atomicfile"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Output file names.
const (
	ResultsJSONFile = "results.json"
	ResultsCSVFile  = "results.csv"
	SummaryCSVFile  = "summary.csv"
	PlotTop1File    = "learning_curve_top1.png"
	PlotTop5File    = "learning_curve_top5.png"
	PlotMRRFile     = "learning_curve_mrr.png"
	PlotNLLFile     = "learning_curve_nll.png"
)

// WriteOutputs writes results.json, results.csv, summary.csv and the four
// learning-curve plots (top-1, top-5, MRR, gold NLL) into dir (created if
// needed). Each file is written to a temporary name and renamed, so a
// failure leaves no partial file.
func WriteOutputs(dir string, res *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("write results: encode JSON: %w", err)
	}
	files := []struct {
		name string
		data func() ([]byte, error)
	}{
		{ResultsJSONFile, func() ([]byte, error) { return append(js, '\n'), nil }},
		{ResultsCSVFile, func() ([]byte, error) { return csvBytes(resultRows(res)) }},
		{SummaryCSVFile, func() ([]byte, error) { return csvBytes(summaryRows(res)) }},
		{PlotTop1File, func() ([]byte, error) { return PlotCurves(res.Summary, MetricTop1) }},
		{PlotTop5File, func() ([]byte, error) { return PlotCurves(res.Summary, MetricTop5) }},
		{PlotMRRFile, func() ([]byte, error) { return PlotCurves(res.Summary, MetricMRR) }},
		{PlotNLLFile, func() ([]byte, error) { return PlotCurves(res.Summary, MetricNLL) }},
	}
	for _, f := range files {
		b, err := f.data()
		if err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func csvBytes(rows [][]string) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.WriteAll(rows); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func f64(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

func optF64(x *float64) string {
	if x == nil {
		return ""
	}
	return f64(*x)
}

// ResultsCSVHeader is the header of results.csv: one row per strategy,
// seed and round.
var ResultsCSVHeader = []string{"strategy", "seed", "round", "labels", "answered", "wrong", "top1", "top5", "mrr", "nll",
	"load_s", "score_s", "select_s", "finetune_s", "eval_s", "finetune_steps", "finetune_loss"}

func resultRows(res *Results) [][]string {
	rows := [][]string{ResultsCSVHeader}
	for _, r := range res.Runs {
		for _, rr := range r.Rounds {
			rows = append(rows, []string{
				r.Strategy, strconv.FormatInt(r.Seed, 10), strconv.Itoa(rr.Round), strconv.Itoa(rr.Labels),
				strconv.Itoa(rr.Answered), strconv.Itoa(rr.Wrong), f64(rr.Top1), f64(rr.Top5), f64(rr.MRR), f64(rr.NLL),
				f64(rr.Timing.Load), f64(rr.Timing.Score), f64(rr.Timing.Select), f64(rr.Timing.FineTune), f64(rr.Timing.Eval),
				strconv.Itoa(rr.FineTune.Steps), f64(rr.FineTune.FinalLoss),
			})
		}
	}
	return rows
}

// SummaryCSVHeader is the header of summary.csv: one row per strategy, the
// first row ("start") being the starting model's metrics. AULCs are over
// the labelled rounds. The vs_random columns are the paired differences of
// AULC with random (mean, 95 % bootstrap interval, wins/losses/ties over
// seeds, sign-test p); empty for random itself. Empty label-savings cells
// mean "not reached", or not meaningful (savings_note says why). sources
// lists source=share pairs separated by ";".
var SummaryCSVHeader = []string{"strategy", "seeds",
	"aulc_top1_mean", "aulc_top1_sd", "aulc_top5_mean", "aulc_top5_sd", "aulc_mrr_mean", "aulc_mrr_sd",
	"final_top1_mean", "final_top1_sd", "final_top5_mean", "final_top5_sd", "final_mrr_mean", "final_mrr_sd",
	"final_nll_mean", "final_nll_sd", "final_labels",
	"vs_random_aulc_top1_mean", "vs_random_aulc_top1_ci_low", "vs_random_aulc_top1_ci_high",
	"vs_random_aulc_top1_wins", "vs_random_aulc_top1_losses", "vs_random_aulc_top1_ties", "vs_random_aulc_top1_sign_p",
	"vs_random_aulc_top5_mean", "vs_random_aulc_top5_ci_low", "vs_random_aulc_top5_ci_high", "vs_random_aulc_top5_sign_p",
	"vs_random_aulc_mrr_mean", "vs_random_aulc_mrr_ci_low", "vs_random_aulc_mrr_ci_high", "vs_random_aulc_mrr_sign_p",
	"target_top1", "labels_to_target", "label_savings", "label_savings_pct", "savings_note",
	"bought_items", "bought_context_words", "bought_multi_piece", "bought_freq_rank", "bought_sources",
	"score_s_per_round", "select_s_per_round", "finetune_s_per_round", "eval_s_per_round"}

// sourcesCell writes the shares as "a=0.1;b=0.9", sorted by source, with
// prec decimals (-1: as many as needed to read the value back).
func sourcesCell(m map[string]float64, prec int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.FormatFloat(m[k], 'f', prec, 64)
	}
	return strings.Join(parts, ";")
}

func summaryRows(res *Results) [][]string {
	rows := [][]string{SummaryCSVHeader}
	start := make([]string, len(SummaryCSVHeader))
	start[0], start[1] = "start", "0"
	b := res.Base
	start[8], start[10], start[12], start[14] = f64(b.Top1), f64(b.Top5), f64(b.MRR), f64(b.NLL)
	rows = append(rows, start)
	for _, s := range res.Summary {
		vs := make([]string, 15)
		if v := s.VsRandom; v != nil {
			vs = []string{
				f64(v.AULCTop1.Mean), f64(v.AULCTop1.CILow), f64(v.AULCTop1.CIHigh),
				strconv.Itoa(v.AULCTop1.Wins), strconv.Itoa(v.AULCTop1.Losses), strconv.Itoa(v.AULCTop1.Ties), f64(v.AULCTop1.SignP),
				f64(v.AULCTop5.Mean), f64(v.AULCTop5.CILow), f64(v.AULCTop5.CIHigh), f64(v.AULCTop5.SignP),
				f64(v.AULCMRR.Mean), f64(v.AULCMRR.CILow), f64(v.AULCMRR.CIHigh), f64(v.AULCMRR.SignP),
			}
		}
		row := []string{
			s.Strategy, strconv.Itoa(s.Seeds),
			f64(s.AULCTop1.Mean), f64(s.AULCTop1.SD), f64(s.AULCTop5.Mean), f64(s.AULCTop5.SD), f64(s.AULCMRR.Mean), f64(s.AULCMRR.SD),
			f64(s.FinalTop1.Mean), f64(s.FinalTop1.SD), f64(s.FinalTop5.Mean), f64(s.FinalTop5.SD), f64(s.FinalMRR.Mean), f64(s.FinalMRR.SD),
			f64(s.FinalNLL.Mean), f64(s.FinalNLL.SD), f64(s.FinalLabels),
		}
		row = append(row, vs...)
		row = append(row,
			optF64(s.TargetTop1), optF64(s.LabelsToTarget), optF64(s.LabelSavings), optF64(s.LabelSavingsPct), s.SavingsNote,
			strconv.Itoa(s.Bought.Items), f64(s.Bought.ContextWords), f64(s.Bought.MultiPiece), f64(s.Bought.FreqRank), sourcesCell(s.Bought.Sources, -1),
			f64(s.Time.Score), f64(s.Time.Select), f64(s.Time.FineTune), f64(s.Time.Eval),
		)
		rows = append(rows, row)
	}
	return rows
}

// WriteTable prints the summary as aligned text tables: the metrics and
// label savings, the paired comparisons with random, and what each
// strategy bought.
func WriteTable(w io.Writer, res *Results) error {
	b := res.Base
	sub := ""
	if res.EvalItems < res.EvalTotal {
		sub = fmt.Sprintf(" (random subset of %d, seed %d)", res.EvalTotal, res.EvalSeed)
	}
	fmt.Fprintf(w, "pool %d items, eval %d items%s; starting model top-1 %.4f, top-5 %.4f, MRR %.4f, gold NLL %.3f (%d answers, %d items skipped)\n",
		res.PoolSize, res.EvalItems, sub, b.Top1, b.Top5, b.MRR, b.NLL, b.Masks, b.Skipped)
	fmt.Fprintln(w, "AULC: normalised area over the labelled rounds (round 0, shared by all strategies, left out); ± is the sd over seeds.")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "strategy\tseeds\tAULC top-1\tAULC top-5\tAULC MRR\tfinal top-1\tfinal top-5\tfinal MRR\tfinal NLL\tlabels\tlabels to random's final\tsavings\ts/round score+select\ts/round finetune\ts/round eval")
	notes := map[string]bool{}
	for _, s := range res.Summary {
		reach := "not reached"
		sav := "-"
		switch {
		case s.TargetTop1 == nil:
			reach = "n/a"
			if s.SavingsNote != "" {
				notes[s.SavingsNote] = true
			}
		case s.Reached:
			reach = fmt.Sprintf("%.1f", *s.LabelsToTarget)
			sav = fmt.Sprintf("%+.1f", *s.LabelSavings)
			if s.LabelSavingsPct != nil {
				sav += fmt.Sprintf(" (%+.1f%%)", *s.LabelSavingsPct)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%.4f ± %.4f\t%.4f ± %.4f\t%.4f ± %.4f\t%.4f ± %.4f\t%.4f ± %.4f\t%.4f ± %.4f\t%.3f ± %.3f\t%.0f\t%s\t%s\t%.2f\t%.2f\t%.2f\n",
			s.Strategy, s.Seeds, s.AULCTop1.Mean, s.AULCTop1.SD, s.AULCTop5.Mean, s.AULCTop5.SD, s.AULCMRR.Mean, s.AULCMRR.SD,
			s.FinalTop1.Mean, s.FinalTop1.SD, s.FinalTop5.Mean, s.FinalTop5.SD, s.FinalMRR.Mean, s.FinalMRR.SD,
			s.FinalNLL.Mean, s.FinalNLL.SD, s.FinalLabels, reach, sav,
			s.Time.Score+s.Time.Select, s.Time.FineTune, s.Time.Eval)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for n := range notes {
		fmt.Fprintf(w, "label savings %s\n", n)
	}
	var paired []Summary
	for _, s := range res.Summary {
		if s.VsRandom != nil {
			paired = append(paired, s)
		}
	}
	if len(paired) > 0 {
		fmt.Fprintln(w, "\nPaired with random, seed by seed: mean AULC difference [95% bootstrap CI], wins/losses/ties, two-sided sign-test p")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "strategy\tΔ AULC top-1\tW/L/T\tp\tΔ AULC top-5\tW/L/T\tp\tΔ AULC MRR\tW/L/T\tp")
		cell := func(d PairedDiff) string {
			return fmt.Sprintf("%+.4f [%+.4f, %+.4f]\t%d/%d/%d\t%.3g", d.Mean, d.CILow, d.CIHigh, d.Wins, d.Losses, d.Ties, d.SignP)
		}
		for _, s := range paired {
			v := s.VsRandom
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Strategy, cell(v.AULCTop1), cell(v.AULCTop5), cell(v.AULCMRR))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nWhat each strategy bought (labelled rounds, mean over seeds): context words per item, share of multi-piece answers, mean pool frequency rank of the answers (1 = most frequent), share per source")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "strategy\titems\tcontext words\tmulti-piece\tfreq rank\tsources")
	for _, s := range res.Summary {
		src := sourcesCell(s.Bought.Sources, 3)
		if src == "=1" || src == "" {
			src = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.3f\t%.0f\t%s\n", s.Strategy, s.Bought.Items, s.Bought.ContextWords, s.Bought.MultiPiece, s.Bought.FreqRank, src)
	}
	return tw.Flush()
}
