package workflows

// Bounds of the suggestions kept per item.
const (
	// SuggestionsPerBlank is how many fillers a blank gets at most.
	SuggestionsPerBlank = 5
	// MaxItemSuggestions bounds one item's suggestions over all its blanks,
	// so that candidates (workflow state, activity payloads) stay small
	// whatever the number of [MASK]s: items with more than four blanks get
	// fewer per blank (at least one for each of the first
	// MaxItemSuggestions blanks).
	MaxItemSuggestions = 20
)

// ClipSuggestions keeps, in their order, the first suggestions of each
// blank within the bounds above and returns them in a new slice (nil when
// there are none). s lists each blank's suggestions best first.
func ClipSuggestions(s []Suggestion) []Suggestion {
	if len(s) == 0 {
		return nil
	}
	blanks := map[int]bool{}
	for _, sg := range s {
		if sg.Mask >= 0 && sg.Mask < MaxItemSuggestions {
			blanks[sg.Mask] = true
		}
	}
	per := SuggestionsPerBlank
	if len(blanks) > 0 && MaxItemSuggestions/len(blanks) < per {
		per = max(1, MaxItemSuggestions/len(blanks))
	}
	kept := map[int]int{}
	var out []Suggestion
	for _, sg := range s {
		if !blanks[sg.Mask] || kept[sg.Mask] >= per || len(out) >= MaxItemSuggestions {
			continue
		}
		kept[sg.Mask]++
		out = append(out, sg)
	}
	return out
}
