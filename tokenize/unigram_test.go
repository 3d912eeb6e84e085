package tokenize

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unigramJSON is a small XLM-RoBERTa style tokenizer.json; the
// components can be replaced with the given JSON snippets.
func unigramJSON(normalizer, pre, model string) string {
	if normalizer == "" {
		normalizer = "null"
	}
	if pre == "" {
		pre = `{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}`
	}
	if model == "" {
		model = `{"type":"Unigram","unk_id":3,"vocab":[["<s>",0],["<pad>",0],["</s>",0],["<unk>",0],["▁a",-1],["▁b",-2],["a",-3],["b",-3],["▁",-4],["<mask>",0]]}`
	}
	return `{"version":"1.0","added_tokens":[
		{"id":0,"content":"<s>","special":true},{"id":1,"content":"<pad>","special":true},
		{"id":2,"content":"</s>","special":true},{"id":3,"content":"<unk>","special":true},
		{"id":9,"content":"<mask>","lstrip":true,"special":true}],
	"normalizer":` + normalizer + `,"pre_tokenizer":` + pre + `,
	"post_processor":{"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",0],"trim_offsets":true,"add_prefix_space":true},
	"decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always"},
	"model":` + model + `}`
}

func loadUnigramString(t *testing.T, doc string) (*Tokenizer, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(dir)
}

func TestUnigramSmall(t *testing.T) {
	tok, err := loadUnigramString(t, unigramJSON("", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text   string
		tokens []string
		ids    []int
	}{
		{"a b", []string{"<s>", "▁a", "▁b", "</s>"}, []int{0, 4, 5, 2}},
		{"ab", []string{"<s>", "▁a", "b", "</s>"}, []int{0, 4, 7, 2}},
		{"a xy b", []string{"<s>", "▁a", "▁", "xy", "▁b", "</s>"}, []int{0, 4, 8, 3, 5, 2}},
		{"a <mask>", []string{"<s>", "▁a", " <mask>", "</s>"}, []int{0, 4, 9, 2}},
	}
	for _, tc := range tests {
		enc, err := tok.Encode(tc.text)
		if err != nil {
			t.Fatal(err)
		}
		if !equalStrings(enc.Tokens, tc.tokens) || !equalInts(enc.IDs, tc.ids) {
			t.Errorf("Encode(%q) = %q %v, want %q %v", tc.text, enc.Tokens, enc.IDs, tc.tokens, tc.ids)
		}
	}
	if got, err := tok.Decode([]int{0, 4, 7, 5, 2}, true); err != nil || got != "ab b" {
		t.Errorf("Decode = %q, %v; want \"ab b\"", got, err)
	}
	if tok.Kind() != "Unigram" || tok.UNKID() != 3 || tok.MaskID() != 9 {
		t.Errorf("kind %s, unk %d, mask %d", tok.Kind(), tok.UNKID(), tok.MaskID())
	}
	ps, err := tok.AnswerPieces("a <mask> and b<mask>", []string{"b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(ps[0].Tokens, []string{"▁b"}) || !equalStrings(ps[1].Tokens, []string{"a"}) {
		t.Errorf("AnswerPieces = %q, %q; want [▁b], [a]", ps[0].Tokens, ps[1].Tokens)
	}
}

func TestUnigramUnknownWithoutUnkID(t *testing.T) {
	model := `{"type":"Unigram","unk_id":null,"vocab":[["<s>",0],["<pad>",0],["</s>",0],["<unk>",0],["▁a",-1],["▁b",-2],["a",-3],["b",-3],["▁",-4],["<mask>",0]]}`
	tok, err := loadUnigramString(t, unigramJSON("", "", model))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Encode("a b"); err != nil {
		t.Fatalf("Encode of known text: %v", err)
	}
	if _, err := tok.Encode("a x"); !errors.Is(err, errUnknownChar) {
		t.Fatalf("Encode of an unknown character without unk_id: %v, want errUnknownChar", err)
	}
}

func TestUnigramLoadRefusals(t *testing.T) {
	tests := []struct {
		name, doc   string
		unsupported bool
		msg         string
	}{
		{"precompiled too short", unigramJSON(`{"type":"Precompiled","precompiled_charsmap":"AAAA"}`, "", ""), false, "precompiled_charsmap is too short"},
		{"precompiled not base64", unigramJSON(`{"type":"Precompiled","precompiled_charsmap":"%%"}`, "", ""), false, "not base64"},
		{"precompiled truncated trie", unigramJSON(`{"type":"Precompiled","precompiled_charsmap":"QAAAAAAA"}`, "", ""), false, "announces 16 trie units"},
		{"bert normalizer", unigramJSON(`{"type":"BertNormalizer"}`, "", ""), true, `normalizer type "BertNormalizer" with a Unigram model`},
		{"whitespace pre-tokenizer", unigramJSON("", `{"type":"Whitespace"}`, ""), true, `pre_tokenizer type "Whitespace" with a Unigram model`},
		{"bad regex", unigramJSON(`{"type":"Replace","pattern":{"Regex":"(?<=a)b"},"content":""}`, "", ""), true, "Replace pattern"},
		{"contradicting prefix space", unigramJSON("", `{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","add_prefix_space":false}`, ""), false, "add_prefix_space does not match"},
		{"unk_id outside", unigramJSON("", "", `{"type":"Unigram","unk_id":99,"vocab":[["<s>",0]]}`), false, "unk_id 99"},
		{"empty vocab", unigramJSON("", "", `{"type":"Unigram","unk_id":null,"vocab":[]}`), false, `no "vocab"`},
		{"score not a number", unigramJSON("", "", `{"type":"Unigram","unk_id":0,"vocab":[["<s>","high"]]}`), false, "score"},
		{"empty piece", unigramJSON("", "", `{"type":"Unigram","unk_id":0,"vocab":[["",0]]}`), false, "empty"},
	}
	for _, tc := range tests {
		_, err := loadUnigramString(t, tc.doc)
		if err == nil {
			t.Errorf("%s: Load succeeded", tc.name)
			continue
		}
		if errors.Is(err, ErrUnsupported) != tc.unsupported || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.msg)) {
			t.Errorf("%s: Load error %v (ErrUnsupported %v), want %q (ErrUnsupported %v)", tc.name, err, errors.Is(err, ErrUnsupported), tc.msg, tc.unsupported)
		}
	}
}

// TestMetaspaceLegacyFields checks how older tokenizer.json files spell
// Metaspace (XLM-RoBERTa's on the Hub has "add_prefix_space" and
// "str_rep" and no "prepend_scheme"), as Hugging Face reads them.
func TestMetaspaceLegacyFields(t *testing.T) {
	tests := []struct {
		json    string
		want    string
		split   bool
		wantErr bool
	}{
		{`{"type":"Metaspace","replacement":"▁","str_rep":"▁","add_prefix_space":true}`, "always", true, false},
		{`{"type":"Metaspace","replacement":"▁","add_prefix_space":false}`, "never", true, false},
		{`{"type":"Metaspace","replacement":"▁","add_prefix_space":false,"prepend_scheme":"never","split":false}`, "never", false, false},
		{`{"type":"Metaspace","replacement":"▁","add_prefix_space":false,"prepend_scheme":"always"}`, "", false, true},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"first"}`, "first", true, false},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"sometimes"}`, "", false, true},
		{`{"type":"Metaspace","replacement":"__"}`, "", false, true},
	}
	for _, tc := range tests {
		m, err := parseMetaspace([]byte(tc.json))
		if (err != nil) != tc.wantErr {
			t.Errorf("parseMetaspace(%s): error %v, want error %v", tc.json, err, tc.wantErr)
			continue
		}
		if err == nil && (m.prepend != tc.want || m.split != tc.split || !m.on) {
			t.Errorf("parseMetaspace(%s) = %+v, want prepend %q split %v", tc.json, m, tc.want, tc.split)
		}
	}
}
