package acquire

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A Strategy chooses a batch of candidates to annotate.
type Strategy interface {
	// Name returns the strategy's canonical spec; Parse(Name()) returns an
	// equivalent strategy.
	Name() string
	// Select returns up to k candidates, never an excluded one and never
	// the same ID twice: min(k, number of eligible candidates) of them,
	// best first, with Rank 1, 2, …. It fails on k ≤ 0, empty or duplicate
	// IDs, a NaN or infinite score that the strategy reads, or (for the
	// diversity strategies) missing or mismatched embeddings.
	Select(ctx context.Context, cands []Candidate, k int, opts SelectOptions) ([]Selection, error)
}

// strategyNames lists the strategy names that Parse accepts.
var strategyNames = []string{"random", "least-confidence", "margin", "entropy", "bald", "kcenter", "hybrid", "surprisal", "density", "target", "domain"}

// StrategyNames returns the names [Parse] accepts (a mix combines them).
func StrategyNames() []string {
	return append([]string(nil), strategyNames...)
}

// Parse returns the strategy described by spec:
//
//	random | least-confidence (lc) | margin | entropy | bald | surprisal
//	kcenter[(metric=cosine|l2, cap=N)]
//	hybrid[(by=MEASURE, factor=N, metric=cosine|l2)]
//	density[(by=MEASURE, beta=X)]   uncertainty × similarity to the pool (information density)
//	target[(by=MEASURE, beta=X)]    uncertainty × similarity to a target sample
//	density|target(by=random[, beta=X]) a random sample weighted by similarity^X
//	domain[(by=random[, beta=X])]   the most target-like texts, or a draw ∝ exp(X·evidence)
//	NAME:WEIGHT,NAME:WEIGHT,...   a mix, e.g. "entropy:0.8,random:0.2"
//
// Errors list the valid names.
func Parse(spec string) (Strategy, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("empty strategy name (valid: %s, or a mix like entropy:0.8,random:0.2)", strings.Join(strategyNames, ", "))
	}
	terms, err := splitTop(spec)
	if err != nil {
		return nil, fmt.Errorf("strategy %q: %w", spec, err)
	}
	if len(terms) == 1 && !strings.Contains(afterParens(terms[0]), ":") {
		return parseOne(terms[0])
	}
	parts := make([]MixPart, 0, len(terms))
	for _, t := range terms {
		name, w := t, "1"
		if i := strings.LastIndex(t, ":"); i >= 0 && i > strings.LastIndex(t, ")") {
			name, w = strings.TrimSpace(t[:i]), strings.TrimSpace(t[i+1:])
		}
		weight, err := strconv.ParseFloat(w, 64)
		if err != nil {
			return nil, fmt.Errorf("strategy %q: mix weight %q of %q: not a number", spec, w, name)
		}
		s, err := parseOne(name)
		if err != nil {
			return nil, fmt.Errorf("strategy %q: %w", spec, err)
		}
		parts = append(parts, MixPart{Strategy: s, Weight: weight})
	}
	m, err := NewMix(parts...)
	if err != nil {
		return nil, fmt.Errorf("strategy %q: %w", spec, err)
	}
	return m, nil
}

// afterParens returns s without its parenthesised parameter list.
func afterParens(s string) string {
	if i := strings.LastIndex(s, ")"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// splitTop splits s at commas outside parentheses.
func splitTop(s string) ([]string, error) {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ')' at byte %d", i)
			}
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced '('")
	}
	out = append(out, strings.TrimSpace(s[start:]))
	for _, t := range out {
		if t == "" {
			return nil, fmt.Errorf("empty term")
		}
	}
	return out, nil
}

// parseOne parses a single strategy with optional parameters.
func parseOne(term string) (Strategy, error) {
	name, params := term, map[string]string{}
	if i := strings.Index(term, "("); i >= 0 {
		if !strings.HasSuffix(term, ")") {
			return nil, fmt.Errorf("strategy %q: parameters must end with ')'", term)
		}
		name = strings.TrimSpace(term[:i])
		inner := strings.TrimSpace(term[i+1 : len(term)-1])
		if inner != "" {
			for _, kv := range strings.Split(inner, ",") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, fmt.Errorf("strategy %q: parameter %q is not key=value", term, kv)
				}
				params[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	noParams := func(s Strategy) (Strategy, error) {
		if len(params) > 0 {
			return nil, fmt.Errorf("strategy %q takes no parameters", name)
		}
		return s, nil
	}
	switch name {
	case "random":
		return noParams(Random{})
	case "least-confidence", "lc":
		return noParams(NewUncertainty(LeastConfidence))
	case "margin":
		return noParams(NewUncertainty(Margin))
	case "entropy":
		return noParams(NewUncertainty(Entropy))
	case "bald":
		return noParams(NewUncertainty(BALD))
	case "surprisal":
		return noParams(NewUncertainty(Surprisal))
	case "kcenter", "coreset":
		kc := KCenter{Metric: Cosine, Cap: DefaultKCenterCap}
		for k, v := range params {
			var err error
			switch k {
			case "metric":
				kc.Metric, err = ParseMetric(v)
			case "cap":
				kc.Cap, err = positiveInt(k, v)
			default:
				err = fmt.Errorf("unknown parameter %q (valid: metric, cap)", k)
			}
			if err != nil {
				return nil, fmt.Errorf("strategy %q: %w", term, err)
			}
		}
		return kc, nil
	case "hybrid":
		h := Hybrid{By: Entropy, Factor: DefaultHybridFactor, Metric: Cosine}
		for k, v := range params {
			var err error
			switch k {
			case "by":
				h.By, err = ParseMeasure(v)
			case "factor":
				h.Factor, err = positiveInt(k, v)
			case "metric":
				h.Metric, err = ParseMetric(v)
			default:
				err = fmt.Errorf("unknown parameter %q (valid: by, factor, metric)", k)
			}
			if err != nil {
				return nil, fmt.Errorf("strategy %q: %w", term, err)
			}
		}
		return h, nil
	case "density", "target":
		d := Density{By: Entropy, Beta: 1, Target: name == "target"}
		for k, v := range params {
			var err error
			switch k {
			case "by":
				if v == "random" {
					d.Sample = true
					break
				}
				d.By, err = ParseMeasure(v)
			case "beta":
				d.Beta, err = parseBeta(v)
			default:
				err = fmt.Errorf("unknown parameter %q (valid: by, beta)", k)
			}
			if err != nil {
				return nil, fmt.Errorf("strategy %q: %w", term, err)
			}
		}
		return d, nil
	case "domain":
		var d Domain
		for k, v := range params {
			var err error
			switch k {
			case "by":
				if v != "random" {
					err = fmt.Errorf("parameter by=%q: domain takes by=random only (it uses no uncertainty)", v)
				}
				d.Sample = true
			case "beta":
				d.Beta, err = parseBeta(v)
			default:
				err = fmt.Errorf("unknown parameter %q (valid: by, beta)", k)
			}
			if err != nil {
				return nil, fmt.Errorf("strategy %q: %w", term, err)
			}
		}
		if d.Beta != 0 && !d.Sample {
			return nil, fmt.Errorf("strategy %q: beta weighs the random draw; add by=random", term)
		}
		return d, nil
	}
	return nil, fmt.Errorf("unknown strategy %q (valid: %s, or a mix like entropy:0.8,random:0.2)", name, strings.Join(strategyNames, ", "))
}

// parseBeta parses the beta parameter: a finite positive number.
func parseBeta(v string) (float64, error) {
	b, err := strconv.ParseFloat(v, 64)
	if err != nil || !(b > 0) || math.IsInf(b, 0) {
		return 0, fmt.Errorf("parameter beta=%q: want a positive number", v)
	}
	return b, nil
}

func positiveInt(key, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("parameter %s=%q: want a positive integer", key, v)
	}
	return n, nil
}
