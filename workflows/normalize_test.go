package workflows

import (
	"math"
	"strings"
	"testing"
	"time"
)

var timeZero time.Time

func TestNormalizeAnswer(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		fold  bool
		multi bool
		want  string
		err   string
	}{
		{name: "plain", in: "dog", fold: true, want: "dog"},
		{name: "case folded", in: "Dog", fold: true, want: "dog"},
		{name: "case kept for cased models", in: "Dog", want: "Dog"},
		{name: "trimmed, inner space collapsed", in: "  hot \t dog\n", fold: true, want: "hot dog"},
		{name: "no-break space is white space", in: "hot\u00a0dog", fold: true, want: "hot dog"},
		{name: "NFC: e + combining acute is é", in: "cafe\u0301", fold: true, want: "café"},
		{name: "sharp s folds", in: "STRASSE", fold: true, want: "strasse"},
		{name: "zero-width space refused", in: "dog\u200b", fold: true, err: "U+200B (zero-width space)"},
		{name: "byte order mark refused", in: "\ufeffdog", fold: true, err: "U+FEFF (byte order mark)"},
		{name: "bidi override refused", in: "\u202edog", fold: true, err: "U+202E (bidirectional text control)"},
		{name: "right-to-left mark refused", in: "dog\u200f", fold: true, err: "U+200F"},
		{name: "soft hyphen refused", in: "do\u00adg", fold: true, err: "soft hyphen"},
		{name: "escape control refused", in: "do\x1bg", fold: true, err: "control character"},
		{name: "empty", in: " \t ", fold: true, err: "empty answer"},
		{name: "invalid UTF-8", in: "do\xffg", fold: true, err: "not valid UTF-8"},
		{name: "too long", in: strings.Repeat("a", MaxAnswerBytes+1), fold: true, err: "longer than"},
		{name: "separator in a multi-blank answer", in: "a|b", fold: true, multi: true, err: "separates the blanks"},
		{name: "separator allowed with one blank", in: "a|b", fold: true, want: "a|b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeAnswer(tc.in, tc.fold, tc.multi)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("NormalizeAnswer(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeAnswer(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestOneVoteForCaseVariants: "Dog", "dog" and " dog " are one value;
// "dog" + zero-width space is refused, never a third vote.
func TestOneVoteForCaseVariants(t *testing.T) {
	r := newRound(1, 4, []Candidate{{ItemID: "a", Text: "the [MASK] barks"}})
	r.open = true
	for i, ans := range []string{"Dog", "dog", " dog ", "dog\u200b"} {
		r.apply(LabelSubmission{Round: 1, Annotator: string(rune('p' + i)), Answers: []Answer{{ItemID: "a", Answers: []string{ans}}}}, "signal", timeZero)
	}
	d := r.decisions()[0]
	if len(d.Votes) != 1 || d.Votes["dog"] != 3 || d.Label != "dog" || len(d.Labels) != 1 || d.Labels[0] != "dog" {
		t.Fatalf("decision %+v, want three votes for dog", d)
	}
	var rejected []RawAnswer
	for _, raw := range r.raw {
		if raw.Rejected != "" {
			rejected = append(rejected, raw)
		}
	}
	if len(rejected) != 1 || !strings.Contains(rejected[0].Rejected, "U+200B") || rejected[0].Answers[0] != "dog\u200b" {
		t.Fatalf("rejected records %+v, want the zero-width one with its raw text", rejected)
	}
	if r.raw[0].Answers[0] != "Dog" {
		t.Errorf("raw text %q, want the text as sent", r.raw[0].Answers[0])
	}
}

func TestAnswersPerBlank(t *testing.T) {
	r := newRound(1, 3, []Candidate{{ItemID: "one", Text: "a [MASK] b"}, {ItemID: "two", Text: "[MASK] and [MASK]"}})
	r.open = true
	tests := []struct {
		name string
		a    Answer
		want string
	}{
		{"three answers for one blank", Answer{ItemID: "one", Answers: []string{"a", "b", "c"}}, "has 1 blank(s) ([MASK]) but the answer has 3"},
		{"one answer for two blanks", Answer{ItemID: "two", Answers: []string{"salt"}}, "has 2 blank(s) ([MASK]) but the answer has 1"},
		{"old joined string with the wrong count", Answer{ItemID: "two", Answer: "a | b | c"}, "but the answer has 3"},
		{"both forms", Answer{ItemID: "one", Answer: "x", Answers: []string{"x"}}, "not both"},
		{"invisible in the second blank", Answer{ItemID: "two", Answers: []string{"salt", "pep\u200bper"}}, "blank 2"},
		{"empty list", Answer{ItemID: "one"}, "empty answer"},
		{"two blanks", Answer{ItemID: "two", Answers: []string{"Salt", "pepper"}}, ""},
		{"old joined string", Answer{ItemID: "two", Answer: "salt | pepper"}, ""},
	}
	for _, tc := range tests {
		err := r.validate(LabelSubmission{Round: 1, Annotator: "p", Answers: []Answer{tc.a}})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// The same two-blank answer in both forms is one vote; labels are lists.
	r.apply(LabelSubmission{Round: 1, Annotator: "p", Answers: []Answer{{ItemID: "two", Answers: []string{"Salt", "pepper"}}}}, "update", timeZero)
	r.apply(LabelSubmission{Round: 1, Annotator: "q", Answers: []Answer{{ItemID: "two", Answer: "salt | pepper"}}}, "signal", timeZero)
	r.apply(LabelSubmission{Round: 1, Annotator: "s", Answers: []Answer{{ItemID: "one", Answers: []string{"x", "y"}}}}, "signal", timeZero)
	d := r.decisions()
	if d[1].Votes["salt | pepper"] != 2 || strings.Join(d[1].Labels, ",") != "salt,pepper" || d[1].Label != "salt | pepper" {
		t.Errorf("two-blank decision %+v", d[1])
	}
	if d[0].Answers != 0 || d[0].Labels != nil {
		t.Errorf("a mismatched signal was counted: %+v", d[0])
	}
	// The quorum (3) bounds the counted answers of an item.
	r.apply(LabelSubmission{Round: 1, Annotator: "t", Answers: []Answer{{ItemID: "two", Answers: []string{"a", "b"}}}}, "signal", timeZero)
	if err := r.validate(LabelSubmission{Round: 1, Annotator: "u", Answers: []Answer{{ItemID: "two", Answers: []string{"a", "b"}}}}); err == nil || !strings.Contains(err.Error(), "already has its 3 answer(s)") {
		t.Errorf("fourth answer: %v, want refused", err)
	}
}

func TestAgreement(t *testing.T) {
	alpha := func(a *Agreement) float64 {
		if a == nil || a.Alpha == nil {
			return math.NaN()
		}
		return *a.Alpha
	}
	// Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability",
	// nominal example: 4 observers, 12 units, missing values; α = 0.743.
	// Units as columns of the observers' rows (0 = missing):
	//   A: 1 2 3 3 2 1 4 1 2 . . .
	//   B: 1 2 3 3 2 2 4 1 2 5 . 3
	//   C: . 3 3 3 2 3 4 2 2 5 1 .
	//   D: 1 2 3 3 2 4 4 1 2 5 1 .
	rows := [][]string{
		{"1", "2", "3", "3", "2", "1", "4", "1", "2", "", "", ""},
		{"1", "2", "3", "3", "2", "2", "4", "1", "2", "5", "", "3"},
		{"", "3", "3", "3", "2", "3", "4", "2", "2", "5", "1", ""},
		{"1", "2", "3", "3", "2", "4", "4", "1", "2", "5", "1", ""},
	}
	units := make([][]string, 12)
	for _, row := range rows {
		for u, v := range row {
			if v != "" {
				units[u] = append(units[u], v)
			}
		}
	}
	k := ComputeAgreement(units)
	if got := alpha(k); math.Abs(got-0.743) > 0.0005 {
		t.Errorf("Krippendorff's nominal example: alpha %.4f, want 0.743", got)
	}
	if k.Items != 11 || k.Answers != 40 {
		t.Errorf("pairable units %d and values %d, want 11 and 40 (unit 12 has one value)", k.Items, k.Answers)
	}
	// Pairs: units 1,11 (3 values→3 pairs, all agree; 2 values→1 pair);
	// hand count over the 11 units: 3+6+6+6+6+6+6+6+6+3+1 = 55 pairs, of
	// which agree 3+3+6+6+6+0+6+3+6+3+1 = 43.
	if k.Pairs != 55 || math.Abs(k.PairwiseAgreement-43.0/55) > 1e-12 {
		t.Errorf("pairs %d agreement %.4f, want 55 and %.4f", k.Pairs, k.PairwiseAgreement, 43.0/55)
	}

	// Krippendorff (2011), binary example with two observers: α = 0.095.
	a := []string{"0", "1", "0", "0", "0", "0", "0", "0", "1", "0"}
	b := []string{"1", "1", "1", "0", "0", "1", "0", "0", "0", "0"}
	units = nil
	for i := range a {
		units = append(units, []string{a[i], b[i]})
	}
	if got := alpha(ComputeAgreement(units)); math.Abs(got-0.095) > 0.0005 {
		t.Errorf("binary example: alpha %.4f, want 0.095", got)
	}

	tests := []struct {
		name     string
		units    [][]string
		alpha    float64 // NaN: undefined
		pairwise float64
		nilAgr   bool
	}{
		{name: "perfect agreement", units: [][]string{{"dog", "dog"}, {"cat", "cat", "cat"}}, alpha: 1, pairwise: 1},
		{name: "one value everywhere: alpha undefined", units: [][]string{{"dog", "dog"}, {"dog", "dog"}}, alpha: math.NaN(), pairwise: 1},
		// Two units, each split: o(dog,cat)=2 per unit → Σ_{c≠k} o = 4;
		// n=4, n_dog=n_cat=2: α = 1 − 3·4/(16−8) = −0.5.
		{name: "systematic disagreement", units: [][]string{{"dog", "cat"}, {"dog", "cat"}}, alpha: -0.5, pairwise: 0},
		{name: "no unit with two answers", units: [][]string{{"dog"}, {}}, nilAgr: true},
	}
	for _, tc := range tests {
		got := ComputeAgreement(tc.units)
		if tc.nilAgr {
			if got != nil {
				t.Errorf("%s: %+v, want nil", tc.name, got)
			}
			continue
		}
		if al := alpha(got); !(math.IsNaN(tc.alpha) && math.IsNaN(al)) && math.Abs(al-tc.alpha) > 1e-12 {
			t.Errorf("%s: alpha %v, want %v", tc.name, al, tc.alpha)
		}
		if math.Abs(got.PairwiseAgreement-tc.pairwise) > 1e-12 {
			t.Errorf("%s: pairwise %v, want %v", tc.name, got.PairwiseAgreement, tc.pairwise)
		}
	}
}
