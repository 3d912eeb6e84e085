package sim

import (
	"bytes"
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Metric names one evaluation metric of the learning curves.
type Metric string

// The metrics of the learning curves.
const (
	MetricTop1 Metric = "top1"
	MetricTop5 Metric = "top5"
	MetricMRR  Metric = "mrr"
	MetricNLL  Metric = "nll"
)

// Metrics lists the metrics in report order.
var Metrics = []Metric{MetricTop1, MetricTop5, MetricMRR, MetricNLL}

// label returns the metric's axis label.
func (m Metric) label() string {
	switch m {
	case MetricTop1:
		return "top-1 accuracy"
	case MetricTop5:
		return "top-5 accuracy"
	case MetricMRR:
		return "mean reciprocal rank"
	case MetricNLL:
		return "gold NLL (nats, lower is better)"
	}
	return string(m)
}

// of returns the curve's statistics of the metric.
func (m Metric) of(c Curve) []Stat {
	switch m {
	case MetricTop1:
		return c.Top1
	case MetricTop5:
		return c.Top5
	case MetricMRR:
		return c.MRR
	case MetricNLL:
		return c.NLL
	}
	return nil
}

// PlotCurves draws the strategies' mean learning curves of metric against
// labels used, each with a band of ± one standard deviation over seeds, and
// returns the PNG.
func PlotCurves(sums []Summary, metric Metric) ([]byte, error) {
	p := plot.New()
	p.Title.Text = "Learning curves: " + metric.label() + " (mean ± sd over seeds)"
	p.X.Label.Text = "labels used"
	p.Y.Label.Text = metric.label()
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	for i, s := range sums {
		stats := metric.of(s.Curve)
		n := min(len(s.Curve.Labels), len(stats))
		if n == 0 {
			continue
		}
		mean := make(plotter.XYs, n)
		band := make(plotter.XYs, 0, 2*n)
		for j := 0; j < n; j++ {
			mean[j] = plotter.XY{X: s.Curve.Labels[j], Y: stats[j].Mean}
			band = append(band, plotter.XY{X: s.Curve.Labels[j], Y: stats[j].Mean + stats[j].SD})
		}
		for j := n - 1; j >= 0; j-- {
			band = append(band, plotter.XY{X: s.Curve.Labels[j], Y: stats[j].Mean - stats[j].SD})
		}
		c := plotutil.Color(i)
		r, g, b, _ := c.RGBA()
		if n > 1 {
			poly, err := plotter.NewPolygon(band)
			if err != nil {
				return nil, fmt.Errorf("plot %s band: %w", s.Strategy, err)
			}
			poly.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 50}
			poly.LineStyle.Width = 0
			p.Add(poly)
		}
		line, points, err := plotter.NewLinePoints(mean)
		if err != nil {
			return nil, fmt.Errorf("plot %s curve: %w", s.Strategy, err)
		}
		line.Color = c
		line.Width = vg.Points(1.5)
		points.Color = c
		points.Shape = plotutil.Shape(i)
		points.Radius = vg.Points(2.5)
		p.Add(line, points)
		p.Legend.Add(s.Strategy, line, points)
	}
	p.Legend.ThumbnailWidth = vg.Points(20)
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	wt, err := p.WriterTo(7*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("plot: render PNG: %w", err)
	}
	return buf.Bytes(), nil
}
