package workflows

import "sort"

// Agreement is the inter-annotator agreement of one round, computed on the
// normalised answers of the items with at least two answers (items skipped
// for everyone left out). A nil Agreement means no item had two answers.
type Agreement struct {
	// Items is the number of items with at least two answers.
	Items int `json:"items"`
	// Answers is the number of answers on those items (Krippendorff's n).
	Answers int `json:"answers"`
	// Pairs is the number of annotator pairs that answered the same item.
	Pairs int `json:"pairs"`
	// PairwiseAgreement is the share of those pairs that gave the same
	// answer (pooled over items).
	PairwiseAgreement float64 `json:"pairwise_agreement"`
	// Alpha is Krippendorff's alpha for nominal data: 1 is perfect
	// agreement, 0 agreement at chance level, below 0 systematic
	// disagreement. Nil when it is undefined: every answer is the same
	// value, so no disagreement was possible to expect.
	Alpha *float64 `json:"krippendorff_alpha,omitempty"`
}

// ComputeAgreement returns the agreement of units, each unit the values
// (answers) given for one item; units with fewer than two values are left
// out. It returns nil when no unit has two values.
//
// Krippendorff's alpha for nominal data with missing values is
// 1 − (n−1)·Σ_u (m_u² − Σ_c n_uc²)/(m_u−1) / (n² − Σ_c n_c²), where m_u is
// the number of values of unit u, n_uc how many of them are c, n_c = Σ_u
// n_uc and n = Σ_u m_u (Krippendorff, "Computing Krippendorff's
// Alpha-Reliability", 2011).
func ComputeAgreement(units [][]string) *Agreement {
	a := &Agreement{}
	total := map[string]int{}
	var observed float64 // Σ_u (m_u² − Σ_c n_uc²)/(m_u−1)
	agreeing := 0
	for _, u := range units {
		m := len(u)
		if m < 2 {
			continue
		}
		a.Items++
		a.Answers += m
		a.Pairs += m * (m - 1) / 2
		counts := map[string]int{}
		for _, v := range u {
			counts[v]++
		}
		same := 0
		for _, v := range sortedKeys(counts) {
			c := counts[v]
			same += c * c
			agreeing += c * (c - 1) / 2
			total[v] += c
		}
		observed += float64(m*m-same) / float64(m-1)
	}
	if a.Items == 0 {
		return nil
	}
	a.PairwiseAgreement = float64(agreeing) / float64(a.Pairs)
	n := a.Answers
	sumSq := 0
	for _, v := range sortedKeys(total) {
		sumSq += total[v] * total[v]
	}
	if expected := float64(n*n - sumSq); expected > 0 {
		alpha := 1 - float64(n-1)*observed/expected
		a.Alpha = &alpha
	}
	return a
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
