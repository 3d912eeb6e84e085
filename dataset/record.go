package dataset

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaskToken is the placeholder that marks a blank in item and eval text.
const MaskToken = "[MASK]"

// Kind names one of the three record kinds of the JSONL format.
type Kind string

// The record kinds.
const (
	KindPool   Kind = "pool"
	KindLabels Kind = "labels"
	KindEval   Kind = "eval"
)

// ParseKind parses "pool", "labels" or "eval".
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindPool, KindLabels, KindEval:
		return k, nil
	}
	return "", fmt.Errorf("unknown record kind %q (want pool, labels or eval)", s)
}

// Item is one unlabelled pool item: a text with one or more [MASK] blanks.
type Item struct {
	// ID is stable; when absent in the input it is ContentID(Text).
	ID string `json:"id"`
	// Text holds one or more MaskToken.
	Text string `json:"text"`
	// Source optionally names where the item comes from ("wordnet",
	// "kjv"): see ValidSource. Mixed pools (BuildMixed) set it so that a
	// simulation can count what each strategy bought from each source.
	Source string `json:"source,omitempty"`
	// Meta is an optional JSON object carried along unchanged.
	Meta json.RawMessage `json:"meta,omitempty"`
}

// Status is the outcome of one annotation.
type Status string

// The label statuses.
const (
	StatusAnswered Status = "answered"
	StatusSkipped  Status = "skipped"
	StatusFlagged  Status = "flagged"
)

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	return s == StatusAnswered || s == StatusSkipped || s == StatusFlagged
}

// Label is one annotator's answer for one pool item.
type Label struct {
	ItemID string `json:"item_id"`
	// Answers holds one string per [MASK] of the item, in order. It is empty
	// for skipped items and may be empty for flagged ones.
	Answers   []string  `json:"answers"`
	Annotator string    `json:"annotator"`
	Round     int       `json:"round"`
	Time      time.Time `json:"time"`
	Status    Status    `json:"status"`
}

// EvalItem is one item of an evaluation set: a text with blanks and the gold
// answer for each blank, in order.
type EvalItem struct {
	ID   string   `json:"id"`
	Text string   `json:"text"`
	Gold []string `json:"gold"`
	// Source optionally names where the item comes from, as Item.Source.
	Source string `json:"source,omitempty"`
	// Meta is an optional JSON object carried along unchanged.
	Meta json.RawMessage `json:"meta,omitempty"`
}

// MaxSourceLen is the longest Source accepted.
const MaxSourceLen = 64

// ValidSource reports whether s is an acceptable Source: empty (no
// source), or 1 to MaxSourceLen bytes of ASCII letters, digits and the
// characters '-', '_', '.', ':' and '/'.
func ValidSource(s string) bool {
	if len(s) > MaxSourceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.:/", c) >= 0) {
			return false
		}
	}
	return true
}

// CountMasks returns how many MaskToken occur in text.
func CountMasks(text string) int { return strings.Count(text, MaskToken) }

// CleanText is the storage normalisation applied to every text on import:
// leading and trailing white space is removed and every run of white space
// becomes one space.
func CleanText(s string) string { return strings.Join(strings.Fields(s), " ") }

// NormalizeText is the comparison normalisation used for ids, splits and
// duplicate detection: lower case, punctuation and symbols removed (except
// that MaskToken is kept as "[mask]"), white space collapsed to one space.
func NormalizeText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], MaskToken) {
			if b.Len() > 0 && !space {
				b.WriteByte(' ')
			}
			b.WriteString("[mask]")
			space = false
			i += len(MaskToken)
			// A mask is a word of its own.
			b.WriteByte(' ')
			space = true
			continue
		}
		r, size := rune(s[i]), 1
		if r >= 0x80 {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		i += size
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(unicode.ToLower(r))
			space = false
		default:
			// White space, punctuation and symbols separate words.
			if b.Len() > 0 && !space {
				b.WriteByte(' ')
				space = true
			}
		}
	}
	return strings.TrimSuffix(b.String(), " ")
}

// ContentID is the stable id of a text: the first 16 hex digits of the
// SHA-256 of NormalizeText(text).
func ContentID(text string) string {
	sum := sha256.Sum256([]byte(NormalizeText(text)))
	return hex.EncodeToString(sum[:8])
}

// hash64 is the 8-byte key used by the duplicate sets.
func hash64(parts ...string) uint64 {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// InEval reports whether the sentence belongs to the evaluation split. The
// decision depends only on NormalizeText(sentence), the seed and the
// fraction, so the same sentence always lands on the same side.
func InEval(sentence string, evalFraction float64, seed int64) bool {
	if evalFraction <= 0 {
		return false
	}
	if evalFraction >= 1 {
		return true
	}
	h := hash64(fmt.Sprint(seed), NormalizeText(sentence))
	// The top 53 bits give a uniform float64 in [0, 1).
	return float64(h>>11)/(1<<53) < evalFraction
}
