package workflows

import (
	"time"
	"unicode/utf8"
)

// Bounds on what clients can put into the workflow's state. Every client
// message (≤ 1 MiB through the hook, anything through a raw signal) is cut
// to these, so that the workflow state, the continue-as-new input and every
// activity payload (PersistLabels above all) stay far below Temporal's
// 2 MiB payload limit: with the defaults the parts clients control add at
// most about 200 KiB to a round's PersistLabels input, whatever they send.
// What a bound leaves out is counted (RoundMetrics.Dropped,
// PersistLabelsInput.Dropped), never silently lost.
const (
	// MaxAnswerBytes bounds one blank's answer (after normalisation);
	// longer answers are refused.
	MaxAnswerBytes = 128
	// MaxAnnotatorBytes bounds an annotator name.
	MaxAnnotatorBytes = 128
	// MaxQuorum bounds RunConfig.Quorum. An item takes at most Quorum
	// counted answers; later ones are refused ("already has its answers").
	MaxQuorum = 20
	// MaxRejectedPerItem and MaxRejectedPerRound bound the rejected answers
	// kept in a round's raw record (signals are not validated up front).
	MaxRejectedPerItem  = 10
	MaxRejectedPerRound = 100
	// MaxNotesPerRound bounds the skip and flag records kept per round.
	MaxNotesPerRound = 100
	// MaxFlagsPerItem and MaxFlagsPerRound bound the flag reasons kept.
	MaxFlagsPerItem  = 5
	MaxFlagsPerRound = 100
	// MaxSelfSkipsPerItem and MaxSelfSkipsPerRound bound the annotators
	// recorded as having skipped an item for themselves (beyond, the skip
	// is counted as dropped and the annotator may still answer).
	MaxSelfSkipsPerItem  = 20
	MaxSelfSkipsPerRound = 200
	// MaxReasonBytes bounds a skip, flag or close reason.
	MaxReasonBytes = 300
	// MaxLeadExtensionsPerRound bounds the ExtendRound requests a round
	// accepts; MaxExtendPerRequest how much later one request may move
	// the deadline.
	MaxLeadExtensionsPerRound = 10
	MaxExtendPerRequest       = 30 * 24 * time.Hour
	// MaxLateRecords bounds the late answers and notes kept between two
	// PersistLabels (and carried through continue-as-new).
	MaxLateRecords = 100

	// Rejected and late records keep at most keptBlanks blanks of at most
	// keptTextBytes each, and item ids of at most keptIDBytes.
	keptBlanks    = 4
	keptTextBytes = 64
	keptIDBytes   = 128
)

// cut returns s cut to at most n bytes on a rune boundary, marked with "…"
// when it was cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - len("…")
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// cutBlanks bounds the raw blanks kept in a record that was not counted.
func cutBlanks(blanks []string) []string {
	n := min(len(blanks), keptBlanks)
	out := make([]string, 0, n+1)
	for _, b := range blanks[:n] {
		out = append(out, cut(b, keptTextBytes))
	}
	if len(blanks) > n {
		out = append(out, cut("… and more", keptTextBytes))
	}
	return out
}

// rawBlanks is what a record keeps of an answer as sent: Answers, or the
// old single string.
func rawBlanks(a Answer) []string {
	if len(a.Answers) > 0 {
		return a.Answers
	}
	if a.Answer != "" {
		return []string{a.Answer}
	}
	return nil
}

// bounded returns r with its client-controlled text cut to the bounds of a
// record that was not counted.
func bounded(r RawAnswer) RawAnswer {
	r.ItemID = cut(r.ItemID, keptIDBytes)
	r.Annotator = cut(r.Annotator, MaxAnnotatorBytes)
	r.Answer = cut(r.Answer, MaxReasonBytes)
	r.Scope = cut(r.Scope, 16)
	if r.Answers != nil {
		r.Answers = cutBlanks(r.Answers)
	}
	return r
}

// lateLog holds records for rounds that are not open, up to MaxLateRecords.
type lateLog struct {
	records []RawAnswer
	dropped int
}

func (l *lateLog) add(r RawAnswer) {
	if len(l.records) >= MaxLateRecords {
		l.dropped++
		return
	}
	l.records = append(l.records, bounded(r))
}
