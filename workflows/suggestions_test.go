package workflows

import (
	"fmt"
	"testing"
)

func TestClipSuggestions(t *testing.T) {
	blanks := func(masks, each int) []Suggestion {
		var s []Suggestion
		for m := range masks {
			for k := range each {
				s = append(s, Suggestion{Token: fmt.Sprintf("m%dk%d", m, k), Mask: m})
			}
		}
		return s
	}
	count := func(s []Suggestion) map[int]int {
		c := map[int]int{}
		for _, sg := range s {
			c[sg.Mask]++
		}
		return c
	}
	tests := []struct {
		name      string
		in        []Suggestion
		wantLen   int
		wantBlank int // suggestions kept for blank 0
		wantMasks int // blanks with suggestions
	}{
		{"none", nil, 0, 0, 0},
		{"one blank, 8 suggestions", blanks(1, 8), 5, 5, 1},
		{"old payloads: no mask field", []Suggestion{{Token: "a"}, {Token: "b"}, {Token: "c"}, {Token: "d"}, {Token: "e"}, {Token: "f"}}, 5, 5, 1},
		{"two blanks", blanks(2, 8), 10, 5, 2},
		{"four blanks fit", blanks(4, 5), 20, 5, 4},
		{"eight blanks share the bound", blanks(8, 5), 16, 2, 8},
		{"forty blanks: one each for the first twenty", blanks(40, 5), 20, 1, 20},
	}
	for _, tt := range tests {
		got := ClipSuggestions(tt.in)
		c := count(got)
		if len(got) != tt.wantLen || c[0] != tt.wantBlank || len(c) != tt.wantMasks {
			t.Errorf("%s: %d suggestions, %d for blank 0, %d blanks; want %d, %d, %d", tt.name, len(got), c[0], len(c), tt.wantLen, tt.wantBlank, tt.wantMasks)
		}
		if len(got) > MaxItemSuggestions {
			t.Errorf("%s: %d suggestions, above the bound", tt.name, len(got))
		}
		if len(got) > 0 && got[0] != tt.in[0] {
			t.Errorf("%s: order changed: %v", tt.name, got[0])
		}
	}
}
