// Package metricstest reads Prometheus endpoints in tests: Scrape parses
// the text format, CheckDashboard checks a Grafana dashboard's queries
// against what was scraped.
package metricstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
)

// Scrape GETs a /metrics URL and returns, for each metric name, the sum of
// its series (a histogram's by its sample count), and every series also
// under name{label=value,...} (labels in the order scraped).
func Scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return Parse(resp.Body)
}

// Parse reads the Prometheus text format as Scrape does.
func Parse(r io.Reader) (map[string]float64, error) {
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var v float64
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Histogram != nil:
				v = float64(m.Histogram.GetSampleCount())
			case m.Untyped != nil:
				v = m.Untyped.GetValue()
			}
			out[name] += v
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] += v
		}
	}
	return out, nil
}

// metricName matches the metric names a dashboard query may use.
var metricName = regexp.MustCompile(`\b(clozeloop|temporal)_[a-z0-9_]+\b`)

// CheckDashboard fails t for every metric a query of the Grafana dashboard
// at path names that scraped lacks (a histogram's _bucket, _sum and _count
// series count as the histogram), and for a dashboard without queries.
func CheckDashboard(t testing.TB, scraped map[string]float64, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries++
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("dashboard panel %q: query %q names no clozeloop or temporal metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				base := n
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suf); ok {
						if _, hist := scraped[b]; hist {
							base = b
						}
					}
				}
				if _, ok := scraped[base]; !ok {
					t.Errorf("dashboard panel %q queries %s, which the running processes do not export", p.Title, n)
				}
			}
		}
	}
	if queries == 0 {
		t.Errorf("%s has no queries", path)
	}
}
