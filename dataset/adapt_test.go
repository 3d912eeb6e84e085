package dataset

import "testing"

func TestAdaptationText(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"the [MASK] sat on the mat .", "the [MASK] sat on the mat .", true},
		{"[MASK] and [MASK] 42", "[MASK] and [MASK] 42", true},
		{"[MASK]", "", false},
		{"[MASK] [MASK]", "", false},
		{"[MASK] . , !", "", false},
		{"", "", false},
		{"élan [MASK]", "élan [MASK]", true},
	}
	for _, tc := range tests {
		got, ok := AdaptationText(tc.in)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("AdaptationText(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}
