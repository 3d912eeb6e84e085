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
	"strconv"
	"text/tabwriter"
)

// Output file names.
const (
	ResultsJSONFile = "results.json"
	ResultsCSVFile  = "results.csv"
	SummaryCSVFile  = "summary.csv"
	PlotTop1File    = "learning_curve_top1.png"
	PlotTop5File    = "learning_curve_top5.png"
)

// WriteOutputs writes results.json, results.csv, summary.csv and the two
// learning-curve plots into dir (created if needed). Each file is written
// to a temporary name and renamed, so a failure leaves no partial file.
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
		{PlotTop1File, func() ([]byte, error) { return PlotCurves(res.Summary, false) }},
		{PlotTop5File, func() ([]byte, error) { return PlotCurves(res.Summary, true) }},
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
var ResultsCSVHeader = []string{"strategy", "seed", "round", "labels", "answered", "wrong", "top1", "top5",
	"load_s", "score_s", "select_s", "finetune_s", "eval_s", "finetune_steps", "finetune_loss"}

func resultRows(res *Results) [][]string {
	rows := [][]string{ResultsCSVHeader}
	for _, r := range res.Runs {
		for _, rr := range r.Rounds {
			rows = append(rows, []string{
				r.Strategy, strconv.FormatInt(r.Seed, 10), strconv.Itoa(rr.Round), strconv.Itoa(rr.Labels),
				strconv.Itoa(rr.Answered), strconv.Itoa(rr.Wrong), f64(rr.Top1), f64(rr.Top5),
				f64(rr.Timing.Load), f64(rr.Timing.Score), f64(rr.Timing.Select), f64(rr.Timing.FineTune), f64(rr.Timing.Eval),
				strconv.Itoa(rr.FineTune.Steps), f64(rr.FineTune.FinalLoss),
			})
		}
	}
	return rows
}

// SummaryCSVHeader is the header of summary.csv: one row per strategy.
// Empty label-savings cells mean "not reached" (or no random run).
var SummaryCSVHeader = []string{"strategy", "seeds", "aulc_top1_mean", "aulc_top1_sd", "aulc_top5_mean", "aulc_top5_sd",
	"final_top1_mean", "final_top1_sd", "final_top5_mean", "final_top5_sd", "final_labels",
	"target_top1", "labels_to_target", "label_savings", "label_savings_pct",
	"score_s_per_round", "select_s_per_round", "finetune_s_per_round", "eval_s_per_round"}

func summaryRows(res *Results) [][]string {
	rows := [][]string{SummaryCSVHeader}
	for _, s := range res.Summary {
		rows = append(rows, []string{
			s.Strategy, strconv.Itoa(s.Seeds), f64(s.AULCTop1.Mean), f64(s.AULCTop1.SD), f64(s.AULCTop5.Mean), f64(s.AULCTop5.SD),
			f64(s.FinalTop1.Mean), f64(s.FinalTop1.SD), f64(s.FinalTop5.Mean), f64(s.FinalTop5.SD), f64(s.FinalLabels),
			optF64(s.TargetTop1), optF64(s.LabelsToTarget), optF64(s.LabelSavings), optF64(s.LabelSavingsPct),
			f64(s.Time.Score), f64(s.Time.Select), f64(s.Time.FineTune), f64(s.Time.Eval),
		})
	}
	return rows
}

// WriteTable prints the summary as an aligned text table.
func WriteTable(w io.Writer, res *Results) error {
	fmt.Fprintf(w, "pool %d items, eval %d items; starting model top-1 %.4f, top-5 %.4f\n",
		res.PoolSize, res.EvalItems, res.Base.Top1, res.Base.Top5)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "strategy\tseeds\tAULC top-1\tAULC top-5\tfinal top-1\tfinal top-5\tlabels\tlabels to random's final\tsavings\ts/round score+select\ts/round finetune\ts/round eval")
	for _, s := range res.Summary {
		reach := "not reached"
		sav := "-"
		switch {
		case s.TargetTop1 == nil:
			reach = "-"
		case s.Reached:
			reach = fmt.Sprintf("%.1f", *s.LabelsToTarget)
			sav = fmt.Sprintf("%+.1f", *s.LabelSavings)
			if s.LabelSavingsPct != nil {
				sav += fmt.Sprintf(" (%+.1f%%)", *s.LabelSavingsPct)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%.4f ± %.4f\t%.4f ± %.4f\t%.4f ± %.4f\t%.4f ± %.4f\t%.0f\t%s\t%s\t%.2f\t%.2f\t%.2f\n",
			s.Strategy, s.Seeds, s.AULCTop1.Mean, s.AULCTop1.SD, s.AULCTop5.Mean, s.AULCTop5.SD,
			s.FinalTop1.Mean, s.FinalTop1.SD, s.FinalTop5.Mean, s.FinalTop5.SD, s.FinalLabels, reach, sav,
			s.Time.Score+s.Time.Select, s.Time.FineTune, s.Time.Eval)
	}
	return tw.Flush()
}
