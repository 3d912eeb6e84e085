// Package dataset defines clozeloop's on-disk data format, streams and
// validates it, splits it without leakage and builds cloze sets from real
// text.
//
// # Format
//
// Every file is JSONL: one UTF-8 JSON object per line; blank lines are
// ignored; unknown fields are errors. A blank is the literal token [MASK].
//
// Pool items (unlabelled):
//
//	{"id": "3f2a9c0d1b7e4a55", "text": "the [MASK] barked all night", "meta": {"source": "wordnet"}}
//
// id is optional: when absent or empty it is ContentID(text), the first 16
// hex digits of the SHA-256 of NormalizeText(text). text holds one or more
// [MASK]. source is optional: a short name of where the item comes from
// (ValidSource), set by BuildMixed. meta is an optional JSON object carried
// along unchanged.
//
// Labels (one annotator's answer for one item):
//
//	{"item_id": "3f2a9c0d1b7e4a55", "answers": ["dog"], "annotator": "ann", "round": 1, "time": "2024-05-01T10:00:00Z", "status": "answered"}
//
// answers has one string per [MASK] of the item, in order; status is
// answered (answers required), skipped (no answers) or flagged (no answers,
// or one per mask); time is RFC 3339. An item, annotator and round
// triple may occur once.
//
// Eval items (evaluation sets, and the oracle files of the builders):
//
//	{"id": "…", "text": "she [MASK] home", "gold": ["ran"], "meta": {…}}
//
// gold has one answer per [MASK], in order.
//
// # Reading
//
// NewItemReader, NewLabelReader and NewEvalReader return a Reader that
// streams one line at a time; only an 8-byte hash per id is kept for the
// duplicate check. A rejected line is a *LineError with the file name, the
// line number and every Reason found: invalid UTF-8, malformed JSON,
// unknown field, empty text, no [MASK], duplicate id, answer count
// different from mask count, empty answer, bad status, missing field, bad
// value. With Options.SkipInvalid the reader skips and counts them.
// Import validates a whole file before writing anything.
//
// # Splits and duplicates
//
// InEval assigns a sentence to the eval split by a hash of the seed and
// NormalizeText(sentence) (lower case, punctuation removed, white space
// collapsed), so the same sentence never lands in both splits. Builders
// drop a sentence whose normalised text, or whose masked item's id, was
// seen before (exact near-duplicate removal; no fuzzy matching).
//
// # Builders
//
// BuildWordNet masks the synset's lemma in WordNet's example sentences
// (Debian package wordnet-base); BuildText masks a word chosen by a Chooser
// (FrequencyChooser by default) in the sentences of any text;
// BuildSupersense turns WordNet's noun and verb examples into prompts whose
// answer is a word for the synset's lexicographer class, split by synset;
// BuildMixed combines the pools of two built folders, marking each item's
// source. All write pool.jsonl, eval.jsonl, oracle.jsonl (the pool's
// answers, eval format), raw.txt (pool-side text for pretraining; nothing
// from the eval side) and stats.json, atomically. The builders drop items
// with fewer than SplitOptions.MinContext context words (ContextWords;
// DefaultMinContext), and Validate and Import count such items as a
// warning. See docs/DATA.md.
package dataset
