package tokenize

import (
	"context"
	"encoding/json"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func lines(texts ...[]string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for _, ts := range texts {
			for _, s := range ts {
				if !yield(s, nil) {
					return
				}
			}
		}
	}
}

func boolPtr(b bool) *bool { return &b }

// parityConfigs are the normaliser settings the parity tests cover.
var parityConfigs = []struct {
	name  string
	lower bool
	strip *bool
}{
	{"uncased", true, nil},
	{"cased", false, nil},
	{"lowercase-keep-accents", true, boolPtr(false)},
	{"cased-strip-accents", false, boolPtr(true)},
}

// TestEncodeParityWithHuggingFace trains a vocabulary per normaliser
// setting, saves it, loads the saved directory back and checks that ids,
// tokens and offsets equal the real Hugging Face tokenizers' on 2,000
// WordNet lines and the hard cases, and that decoding matches too.
func TestEncodeParityWithHuggingFace(t *testing.T) {
	h := startHF(t)
	train := wordnetLines(t, 20000)
	corpus := append(wordnetLines(t, 2000), hardCases()...)
	for _, c := range parityConfigs {
		t.Run(c.name, func(t *testing.T) {
			trained, err := TrainWordPiece(context.Background(), lines(train, hardCases()), TrainOptions{
				VocabSize: 3000, Lowercase: c.lower, StripAccents: c.strip, LimitAlphabet: 1000,
			})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := trained.Save(dir); err != nil {
				t.Fatal(err)
			}
			loaded, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			tj := filepath.Join(dir, "tokenizer.json")
			diffs := compareEncodings(t, h, loaded, tj, corpus)
			t.Logf("%s: %d texts (%d WordNet lines + %d hard cases), %d with different ids",
				c.name, len(corpus), len(corpus)-len(hardCases()), len(hardCases()), diffs)

			// The trained tokenizer (before saving) encodes identically.
			for _, text := range corpus {
				a, err1 := trained.Encode(text)
				b, err2 := loaded.Encode(text)
				if err1 != nil || err2 != nil || !equalInts(a.IDs, b.IDs) {
					t.Fatalf("trained and reloaded tokenizers differ on %q", text)
				}
			}

			// Decoding.
			var ids [][]int
			for _, text := range corpus[len(corpus)-200:] {
				e, err := loaded.Encode(text)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, e.IDs)
			}
			for _, skip := range []bool{false, true} {
				var want []string
				h.call(t, map[string]any{"op": "decode", "tokenizer": tj, "ids": ids, "skip_special_tokens": skip}, &want)
				for i := range ids {
					got, err := loaded.Decode(ids[i], skip)
					if err != nil {
						t.Fatal(err)
					}
					if got != want[i] {
						t.Errorf("Decode(%v, %v) = %q, Hugging Face %q", ids[i], skip, got, want[i])
					}
				}
			}
		})
	}
}

// TestStripAccentsNullFollowsLowercase loads hub-style tokenizer.json files
// with "strip_accents": null and checks that accents are stripped exactly
// when lowercase is on, as in Hugging Face.
func TestStripAccentsNullFollowsLowercase(t *testing.T) {
	h := startHF(t)
	vocab := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cafe", "café", "Cafe", "Café", "creme", "crème", "##s"}
	texts := []string{"café", "Café", "crème cafés", "CAFÉ", "cafe"}
	tests := []struct {
		lower     bool
		wantStrip bool
	}{
		{true, true},
		{false, false},
	}
	for _, tc := range tests {
		opts := DefaultOptions()
		opts.Lowercase = tc.lower
		base, err := FromVocab(vocab, opts)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := base.Save(dir); err != nil {
			t.Fatal(err)
		}
		// Rewrite the normaliser as the hub writes it, and drop
		// tokenizer_config.json's explicit value.
		tj := filepath.Join(dir, "tokenizer.json")
		b, err := os.ReadFile(tj)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		doc["normalizer"].(map[string]any)["strip_accents"] = nil
		b, err = json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tj, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "tokenizer_config.json")); err != nil {
			t.Fatal(err)
		}
		tok, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if tok.norm.StripAccents != tc.wantStrip {
			t.Errorf("lowercase=%v: strip accents = %v, want %v", tc.lower, tok.norm.StripAccents, tc.wantStrip)
		}
		if d := compareEncodings(t, h, tok, tj, texts); d != 0 {
			t.Errorf("lowercase=%v: %d texts differ from Hugging Face", tc.lower, d)
		}
		// Saving again writes the resolved value explicitly.
		dir2 := t.TempDir()
		if err := tok.Save(dir2); err != nil {
			t.Fatal(err)
		}
		b, err = os.ReadFile(filepath.Join(dir2, "tokenizer.json"))
		if err != nil {
			t.Fatal(err)
		}
		if want := `"strip_accents":` + map[bool]string{true: "true", false: "false"}[tc.wantStrip]; !strings.Contains(string(b), want) {
			t.Errorf("saved tokenizer.json lacks %s", want)
		}
	}
}

// TestUnicodeParityExhaustive runs Unicode code points through our
// normaliser (four settings) and pre-tokeniser and through Hugging Face's,
// and requires identical output: every code point of planes 0 and 1 and the
// tag plane, and every 61st elsewhere; all 1,112,063 with
// TOKENIZE_EXHAUSTIVE=1.
func TestUnicodeParityExhaustive(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive Unicode comparison skipped in -short mode")
	}
	h := startHF(t)
	all := os.Getenv("TOKENIZE_EXHAUSTIVE") == "1"
	var cps []rune
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if (r >= 0xD800 && r <= 0xDFFF) || r == '#' {
			continue
		}
		if all || r < 0x20000 || (r >= 0xE0000 && r < 0xE1000) || r%61 == 0 {
			cps = append(cps, r)
		}
	}
	const chunk = 8192
	for _, c := range []struct {
		clean, chinese, strip, lower bool
	}{
		{true, true, true, true},
		{true, true, false, false},
		{true, true, false, true},
		{true, true, true, false},
		{false, true, false, true},  // clean_text off
		{true, false, false, true},  // Chinese characters not spaced
		{false, false, true, false}, // both off, accents stripped without lowercasing
	} {
		nz := Normalizer{CleanText: c.clean, HandleChineseChars: c.chinese, StripAccents: c.strip, Lowercase: c.lower}
		bert := map[string]any{"cleanText": c.clean, "handleChineseChars": c.chinese, "stripAccents": c.strip, "lowercase": c.lower}
		diffs := 0
		for lo := 0; lo < len(cps); lo += chunk {
			var texts []string
			group := cps[lo:min(lo+chunk, len(cps))]
			var sb strings.Builder
			for _, r := range group {
				sb.WriteByte('#')
				sb.WriteRune(r)
			}
			sb.WriteByte('#')
			texts = append(texts, sb.String())
			var want []string
			h.call(t, map[string]any{"op": "normalize", "bert": bert, "texts": texts}, &want)
			gotParts := strings.Split(nz.Normalize(texts[0]), "#")
			wantParts := strings.Split(want[0], "#")
			if len(gotParts) != len(wantParts) {
				t.Fatalf("%+v: chunk at U+%04X: %d parts, Hugging Face %d", c, group[0], len(gotParts), len(wantParts))
			}
			for i, r := range group {
				if gotParts[i+1] != wantParts[i+1] {
					diffs++
					if diffs <= 20 {
						t.Errorf("%+v: U+%04X %q → %q, Hugging Face %q", c, r, string(r), gotParts[i+1], wantParts[i+1])
					}
				}
			}
		}
		if diffs > 0 {
			t.Errorf("%+v: %d code points normalise differently", c, diffs)
		}
	}

	// Pre-tokeniser: "x" + c + "x", separated by spaces.
	diffs := 0
	for lo := 0; lo < len(cps); lo += chunk {
		group := cps[lo:min(lo+chunk, len(cps))]
		texts := make([]string, len(group))
		for i, r := range group {
			texts[i] = "x" + string(r) + "x"
		}
		var want [][][2]json.RawMessage
		h.call(t, map[string]any{"op": "pretokenize", "texts": texts}, &want)
		for i, text := range texts {
			var wantPieces []string
			for _, p := range want[i] {
				var s string
				if err := json.Unmarshal(p[0], &s); err != nil {
					t.Fatal(err)
				}
				wantPieces = append(wantPieces, s)
			}
			var gotPieces []string
			for _, sp := range preTokenize([]byte(text)) {
				gotPieces = append(gotPieces, text[sp.start:sp.end])
			}
			if !equalStrings(gotPieces, wantPieces) {
				diffs++
				if diffs <= 20 {
					t.Errorf("pre-tokenise U+%04X: %q, Hugging Face %q", group[i], gotPieces, wantPieces)
				}
			}
		}
	}
	if diffs > 0 {
		t.Errorf("%d code points pre-tokenise differently", diffs)
	}
}
