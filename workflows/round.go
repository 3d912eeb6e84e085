package workflows

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// round is the labelling state of one open (or just closed) round. It is
// plain data manipulated only from workflow code.
type round struct {
	number   int
	quorum   int
	items    []Candidate
	index    map[string]int
	open     bool
	deadline time.Time
	// legacy keeps the semantics of workflows started before
	// ChangeLabelSemantics (one answer string, no normalisation, a skip
	// removes the item for everyone) so that their histories replay.
	legacy bool
	// fold folds case for votes (RunConfig.CaseSensitiveVotes unset).
	fold bool
	// answers[item][annotator] = normalised blanks (counted answers only).
	answers map[string]map[string][]string
	skipped map[string]bool
	// selfSkips[item][annotator]: skipped by that annotator only.
	selfSkips map[string]map[string]bool
	flags     map[string][]string
	raw       []RawAnswer
	// rejected counts the rejected records kept, per item and in all;
	// notes the skip and flag records kept; dropped what the bounds left
	// out.
	rejectedByItem map[string]int
	rejected       int
	notes          int
	flagCount      int
	selfSkipCount  int
	dropped        int
	closeAsked     bool
	endRun         bool
	// extensions counts the policy's extensions, leadExtensions those
	// leads asked for (ExtendRound).
	extensions     int
	leadExtensions int
}

func newRound(number, quorum int, items []Candidate) *round {
	r := &round{
		number:         number,
		quorum:         quorum,
		items:          items,
		index:          make(map[string]int, len(items)),
		answers:        make(map[string]map[string][]string, len(items)),
		skipped:        map[string]bool{},
		selfSkips:      map[string]map[string]bool{},
		flags:          map[string][]string{},
		rejectedByItem: map[string]int{},
		fold:           true,
	}
	for i, it := range items {
		r.index[it.ItemID] = i
	}
	return r
}

// validate checks a submission against the round without changing anything;
// the error text is what the client sees.
func (r *round) validate(s LabelSubmission) error {
	if r == nil {
		return fmt.Errorf("no round is open for labels yet")
	}
	if s.Round != r.number {
		return fmt.Errorf("wrong round: the submission is for round %d, the current round is %d", s.Round, r.number)
	}
	if !r.open {
		return fmt.Errorf("round %d is closed", r.number)
	}
	if strings.TrimSpace(s.Annotator) == "" {
		return fmt.Errorf("annotator is required")
	}
	if len(s.Annotator) > MaxAnnotatorBytes {
		return fmt.Errorf("annotator name is longer than %d bytes", MaxAnnotatorBytes)
	}
	if len(s.Answers) == 0 {
		return fmt.Errorf("the submission has no answers")
	}
	if len(s.Answers) > len(r.items) {
		return fmt.Errorf("the submission has %d answers but round %d has %d items", len(s.Answers), r.number, len(r.items))
	}
	seen := map[string]bool{}
	for _, a := range s.Answers {
		if _, err := r.checkAnswer(s.Annotator, a); err != nil {
			return err
		}
		if seen[a.ItemID] {
			return fmt.Errorf("item %q appears twice in the submission", a.ItemID)
		}
		seen[a.ItemID] = true
	}
	return nil
}

// checkExtend validates an ExtendRound request against the round without
// changing anything; the error text is what the lead sees.
func (r *round) checkExtend(req ExtendRequest) error {
	switch {
	case r == nil:
		return fmt.Errorf("no round is open yet")
	case req.Round != r.number:
		return fmt.Errorf("wrong round: asked to extend round %d, the current round is %d", req.Round, r.number)
	case !r.open || r.closeAsked:
		return fmt.Errorf("round %d is already closed", r.number)
	case r.leadExtensions >= MaxLeadExtensionsPerRound:
		return fmt.Errorf("round %d was already extended %d times, the most a round allows", r.number, r.leadExtensions)
	}
	return req.Validate()
}

// extend moves the deadline d later for a lead.
func (r *round) extend(d time.Duration) {
	r.deadline = r.deadline.Add(d)
	r.leadExtensions++
}

// allExtensions counts every move of the deadline, by the policy and by
// leads.
func (r *round) allExtensions() int {
	return r.extensions + r.leadExtensions
}

// checkAnswer validates one answer and returns its normalised blanks.
func (r *round) checkAnswer(annotator string, a Answer) ([]string, error) {
	i, ok := r.index[a.ItemID]
	if !ok {
		return nil, fmt.Errorf("unknown item id %q in round %d", cut(a.ItemID, keptIDBytes), r.number)
	}
	var blanks []string
	if r.legacy {
		if strings.TrimSpace(a.Answer) == "" {
			return nil, fmt.Errorf("empty answer for item %q", a.ItemID)
		}
		blanks = []string{strings.TrimSpace(a.Answer)}
	} else {
		var err error
		if blanks, err = normalizeAnswer(a, masks(r.items[i].Text), r.fold); err != nil {
			return nil, err
		}
	}
	if r.skipped[a.ItemID] {
		return nil, fmt.Errorf("item %q was skipped in round %d", a.ItemID, r.number)
	}
	if r.selfSkips[a.ItemID][annotator] {
		return nil, fmt.Errorf("annotator %q skipped item %q (was skipped for this annotator)", annotator, a.ItemID)
	}
	if _, dup := r.answers[a.ItemID][annotator]; dup {
		return nil, fmt.Errorf("annotator %q already answered item %q", annotator, a.ItemID)
	}
	if len(r.answers[a.ItemID]) >= r.quorum {
		return nil, fmt.Errorf("item %q already has its %d answer(s) (is complete)", a.ItemID, r.quorum)
	}
	return blanks, nil
}

// apply records a submission. Answers that are invalid on their own are
// kept as rejected raw answers (the signal path), within the bounds; it
// returns how many were counted.
func (r *round) apply(s LabelSubmission, via string, now time.Time) int {
	counted := 0
	nameErr := ""
	if len(s.Annotator) > MaxAnnotatorBytes {
		nameErr = fmt.Sprintf("annotator name is longer than %d bytes", MaxAnnotatorBytes)
	}
	for _, a := range s.Answers {
		raw := RawAnswer{Round: s.Round, ItemID: a.ItemID, Annotator: s.Annotator, Answers: rawBlanks(a), At: now, Via: via}
		if r.legacy {
			raw.Answers, raw.Answer = nil, a.Answer
		}
		blanks, err := r.checkAnswer(s.Annotator, a)
		if err == nil && nameErr != "" {
			err = fmt.Errorf("%s", nameErr)
		}
		if err != nil {
			raw.Rejected = err.Error()
			r.reject(raw)
			continue
		}
		if r.answers[a.ItemID] == nil {
			r.answers[a.ItemID] = map[string][]string{}
		}
		r.answers[a.ItemID][s.Annotator] = blanks
		raw.Counted = true
		counted++
		r.raw = append(r.raw, raw)
	}
	return counted
}

// reject keeps a rejected record within MaxRejectedPerItem and
// MaxRejectedPerRound; beyond, it only counts it.
func (r *round) reject(raw RawAnswer) {
	if r.rejected >= MaxRejectedPerRound || r.rejectedByItem[raw.ItemID] >= MaxRejectedPerItem {
		r.dropped++
		return
	}
	r.rejected++
	if _, known := r.index[raw.ItemID]; known {
		r.rejectedByItem[raw.ItemID]++
	}
	r.raw = append(r.raw, bounded(raw))
}

// note records a skip or flag within MaxNotesPerRound.
func (r *round) note(raw RawAnswer) {
	if r.notes >= MaxNotesPerRound {
		r.dropped++
		return
	}
	r.notes++
	r.raw = append(r.raw, bounded(raw))
}

// skipSelf records that annotator skipped item for themselves.
func (r *round) skipSelf(item, annotator string) {
	m := r.selfSkips[item]
	if m == nil {
		m = map[string]bool{}
		r.selfSkips[item] = m
	}
	if m[annotator] {
		return
	}
	if len(m) >= MaxSelfSkipsPerItem || r.selfSkipCount >= MaxSelfSkipsPerRound {
		r.dropped++
		return
	}
	r.selfSkipCount++
	m[annotator] = true
}

// flag adds a flag reason within MaxFlagsPerItem.
func (r *round) flag(item, reason string) {
	if len(r.flags[item]) >= MaxFlagsPerItem || r.flagCount >= MaxFlagsPerRound {
		r.dropped++
		return
	}
	r.flagCount++
	r.flags[item] = append(r.flags[item], cut(reason, MaxReasonBytes))
}

// activeItems is the number of items not skipped.
func (r *round) activeItems() int {
	return len(r.items) - len(r.skipped)
}

// itemsComplete counts the active items at quorum.
func (r *round) itemsComplete() int {
	n := 0
	for _, it := range r.items {
		if !r.skipped[it.ItemID] && len(r.answers[it.ItemID]) >= r.quorum {
			n++
		}
	}
	return n
}

// complete reports whether every active item reached its quorum.
func (r *round) complete() bool {
	return r.itemsComplete() == r.activeItems()
}

// labeledItems counts the active items with at least one answer.
func (r *round) labeledItems() int {
	n := 0
	for _, it := range r.items {
		if !r.skipped[it.ItemID] && len(r.answers[it.ItemID]) > 0 {
			n++
		}
	}
	return n
}

// answerCount counts the counted answers.
func (r *round) answerCount() int {
	n := 0
	for _, m := range r.answers {
		n += len(m)
	}
	return n
}

// agreement is the inter-annotator agreement of the round's counted
// answers on items not skipped for everyone.
func (r *round) agreement() *Agreement {
	if r == nil {
		return nil
	}
	units := make([][]string, 0, len(r.items))
	for _, it := range r.items {
		byAnnotator := r.answers[it.ItemID]
		if r.skipped[it.ItemID] || len(byAnnotator) < 2 {
			continue
		}
		u := make([]string, 0, len(byAnnotator))
		for _, a := range sortedAnnotators(byAnnotator) {
			u = append(u, voteKey(byAnnotator[a]))
		}
		units = append(units, u)
	}
	return ComputeAgreement(units)
}

func sortedAnnotators[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// decisions computes the majority vote of every item, in batch order.
func (r *round) decisions() []LabelDecision {
	out := make([]LabelDecision, 0, len(r.items))
	for _, it := range r.items {
		d := LabelDecision{ItemID: it.ItemID, Text: it.Text, Skipped: r.skipped[it.ItemID]}
		if reasons := r.flags[it.ItemID]; len(reasons) > 0 {
			d.Flagged = true
			d.FlagReasons = append([]string(nil), reasons...)
		}
		if skips := r.selfSkips[it.ItemID]; len(skips) > 0 {
			d.SkippedBy = sortedAnnotators(skips)
		}
		byAnnotator := r.answers[it.ItemID]
		d.Answers = len(byAnnotator)
		if len(byAnnotator) > 0 && !d.Skipped {
			d.Votes = map[string]int{}
			blanks := map[string][]string{}
			for _, a := range sortedAnnotators(byAnnotator) {
				k := voteKey(byAnnotator[a])
				d.Votes[k]++
				blanks[k] = byAnnotator[a]
			}
			d.Label, d.Tie = majority(d.Votes)
			if !r.legacy {
				d.Labels = append([]string(nil), blanks[d.Label]...)
			}
		}
		out = append(out, d)
	}
	return out
}

// majority returns the most voted answer; on a tie, the smallest tied
// answer and tie=true.
func majority(votes map[string]int) (label string, tie bool) {
	keys := make([]string, 0, len(votes))
	for k := range votes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	best := -1
	for _, k := range keys {
		switch {
		case votes[k] > best:
			best, label, tie = votes[k], k, false
		case votes[k] == best:
			tie = true
		}
	}
	return label, tie
}

// view is the Batch query answer.
func (r *round) view() BatchView {
	if r == nil {
		return BatchView{}
	}
	v := BatchView{Round: r.number, Open: r.open, Deadline: r.deadline, Items: make([]BatchItem, 0, len(r.items))}
	for _, it := range r.items {
		annotators := sortedAnnotators(r.answers[it.ItemID])
		var skippedBy []string
		if skips := r.selfSkips[it.ItemID]; len(skips) > 0 {
			skippedBy = sortedAnnotators(skips)
		}
		v.Items = append(v.Items, BatchItem{
			ItemID:      it.ItemID,
			Text:        it.Text,
			Suggestions: ClipSuggestions(it.Suggestions),
			Answers:     len(annotators),
			Quorum:      r.quorum,
			Skipped:     r.skipped[it.ItemID],
			Flagged:     len(r.flags[it.ItemID]) > 0,
			Annotators:  annotators,
			SkippedBy:   skippedBy,
			Masks:       masks(it.Text),
		})
	}
	return v
}

// mergeCandidates picks the batch from the shards' best candidates: for each
// strategy share its part of k (largest remainder), highest score first
// (ties by item id), never an excluded item nor one already picked.
func mergeCandidates(shards []ScoreShardOutput, shares []StrategyShare, k int, exclude map[string]bool) []Candidate {
	quota := splitK(shares, k)
	picked := map[string]bool{}
	var out []Candidate
	for i, sh := range shares {
		var pool []Candidate
		for _, o := range shards {
			pool = append(pool, o.Top[sh.Name]...)
		}
		sort.SliceStable(pool, func(a, b int) bool {
			if pool[a].Score != pool[b].Score {
				return pool[a].Score > pool[b].Score
			}
			return pool[a].ItemID < pool[b].ItemID
		})
		taken := 0
		for _, c := range pool {
			if taken == quota[i] {
				break
			}
			if exclude[c.ItemID] || picked[c.ItemID] {
				continue
			}
			picked[c.ItemID] = true
			out = append(out, c)
			taken++
		}
	}
	// Fill what a share could not (few candidates) from the others.
	if len(out) < k {
		var rest []Candidate
		for _, o := range shards {
			for _, sh := range shares {
				rest = append(rest, o.Top[sh.Name]...)
			}
		}
		sort.SliceStable(rest, func(a, b int) bool {
			if rest[a].Score != rest[b].Score {
				return rest[a].Score > rest[b].Score
			}
			return rest[a].ItemID < rest[b].ItemID
		})
		for _, c := range rest {
			if len(out) == k {
				break
			}
			if exclude[c.ItemID] || picked[c.ItemID] {
				continue
			}
			picked[c.ItemID] = true
			out = append(out, c)
		}
	}
	return out
}

// splitK divides k among the shares by the largest-remainder method.
func splitK(shares []StrategyShare, k int) []int {
	q := make([]int, len(shares))
	type rem struct {
		i int
		r float64
	}
	rems := make([]rem, len(shares))
	given := 0
	for i, s := range shares {
		exact := s.Weight * float64(k)
		q[i] = int(exact)
		given += q[i]
		rems[i] = rem{i, exact - float64(q[i])}
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
	for j := 0; given < k; j = (j + 1) % len(rems) {
		q[rems[j].i]++
		given++
	}
	return q
}
