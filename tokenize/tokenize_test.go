package tokenize

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func testVocab() []string {
	return []string{
		"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
		"i", "want", "to", "read", "a", "book", "then", "cafe", "un", "##believ", "##able",
		".", ",", "istanbul", "gross", "k", "ss", "##s", "the", "##e", "[", "]", "mask", "你", "好",
	}
}

func newTestTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := FromVocab(testVocab(), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEncode(t *testing.T) {
	tok := newTestTokenizer(t)
	tests := []struct {
		text    string
		tokens  []string
		offsets [][2]int
	}{
		{"I want to [MASK] a book.", []string{"[CLS]", "i", "want", "to", "[MASK]", "a", "book", ".", "[SEP]"},
			[][2]int{{0, 0}, {0, 1}, {2, 6}, {7, 9}, {10, 16}, {17, 18}, {19, 23}, {23, 24}, {0, 0}}},
		{"[MASK] then [PAD]", []string{"[CLS]", "[MASK]", "then", "[PAD]", "[SEP]"},
			[][2]int{{0, 0}, {0, 6}, {7, 11}, {12, 17}, {0, 0}}},
		{"[PAD] then [MASK]", []string{"[CLS]", "[PAD]", "then", "[MASK]", "[SEP]"},
			[][2]int{{0, 0}, {0, 5}, {6, 10}, {11, 17}, {0, 0}}},
		{"Unbelievable", []string{"[CLS]", "un", "##believ", "##able", "[SEP]"},
			[][2]int{{0, 0}, {0, 2}, {2, 8}, {8, 12}, {0, 0}}},
		{"Café", []string{"[CLS]", "cafe", "[SEP]"}, [][2]int{{0, 0}, {0, 5}, {0, 0}}},
		{"İstanbul", []string{"[CLS]", "istanbul", "[SEP]"}, [][2]int{{0, 0}, {0, 9}, {0, 0}}},
		{"GROẞ \u212a", []string{"[CLS]", "[UNK]", "k", "[SEP]"}, [][2]int{{0, 0}, {0, 6}, {7, 10}, {0, 0}}},
		{"a\u00a0book\u3000a", []string{"[CLS]", "a", "book", "a", "[SEP]"}, [][2]int{{0, 0}, {0, 1}, {3, 7}, {10, 11}, {0, 0}}},
		{"a\ue000book", []string{"[CLS]", "[UNK]", "[SEP]"}, [][2]int{{0, 0}, {0, 8}, {0, 0}}},
		{"你好", []string{"[CLS]", "你", "好", "[SEP]"}, [][2]int{{0, 0}, {0, 3}, {3, 6}, {0, 0}}},
		{"[mask]", []string{"[CLS]", "[", "mask", "]", "[SEP]"}, [][2]int{{0, 0}, {0, 1}, {1, 5}, {5, 6}, {0, 0}}},
		{"", []string{"[CLS]", "[SEP]"}, [][2]int{{0, 0}, {0, 0}}},
		{" \t\n ", []string{"[CLS]", "[SEP]"}, [][2]int{{0, 0}, {0, 0}}},
		{"zzz", []string{"[CLS]", "[UNK]", "[SEP]"}, [][2]int{{0, 0}, {0, 3}, {0, 0}}},
		{strings.Repeat("a", 101), []string{"[CLS]", "[UNK]", "[SEP]"}, [][2]int{{0, 0}, {0, 101}, {0, 0}}},
	}
	for _, tc := range tests {
		enc, err := tok.Encode(tc.text)
		if err != nil {
			t.Errorf("Encode(%q): %v", tc.text, err)
			continue
		}
		if !reflect.DeepEqual(enc.Tokens, tc.tokens) {
			t.Errorf("Encode(%q) tokens = %q, want %q", tc.text, enc.Tokens, tc.tokens)
		}
		if !reflect.DeepEqual(enc.Offsets, tc.offsets) {
			t.Errorf("Encode(%q) offsets = %v, want %v", tc.text, enc.Offsets, tc.offsets)
		}
		for i, id := range enc.IDs {
			if s, _ := tok.IDToToken(id); s != enc.Tokens[i] {
				t.Errorf("Encode(%q): id %d is %q, token says %q", tc.text, id, s, enc.Tokens[i])
			}
		}
	}
}

func TestSpecialIDs(t *testing.T) {
	tok := newTestTokenizer(t)
	got := []int{tok.PadID(), tok.UNKID(), tok.CLSID(), tok.SEPID(), tok.MaskID(), tok.VocabSize()}
	if want := []int{0, 1, 2, 3, 4, len(testVocab())}; !reflect.DeepEqual(got, want) {
		t.Errorf("special ids and size = %v, want %v", got, want)
	}
	if tok.MaskToken() != "[MASK]" {
		t.Errorf("MaskToken() = %q", tok.MaskToken())
	}
	if id, ok := tok.TokenToID("book"); !ok || id != 10 {
		t.Errorf("TokenToID(book) = %d, %v", id, ok)
	}
	if _, ok := tok.IDToToken(999); ok {
		t.Error("IDToToken(999) found a token")
	}
}

func TestWordPieces(t *testing.T) {
	tok := newTestTokenizer(t)
	tests := []struct {
		answer  string
		tokens  []string
		unknown bool
	}{
		{"book", []string{"book"}, false},
		{"Unbelievable", []string{"un", "##believ", "##able"}, false},
		{"books", []string{"book", "##s"}, false},
		{"zebra", []string{"[UNK]"}, true},
		{"a zebra", []string{"a", "[UNK]"}, true},
		{"", nil, false},
	}
	for _, tc := range tests {
		p, err := tok.WordPieces(tc.answer)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p.Tokens, tc.tokens) || p.Unknown != tc.unknown || len(p.IDs) != len(p.Tokens) {
			t.Errorf("WordPieces(%q) = %q unknown=%v, want %q unknown=%v", tc.answer, p.Tokens, p.Unknown, tc.tokens, tc.unknown)
		}
	}
}

func TestDecode(t *testing.T) {
	tok := newTestTokenizer(t)
	enc, err := tok.Encode("I want to read a book, then unbelievable books.")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		skip bool
		want string
	}{
		{true, "i want to read a book, then unbelievable books."},
		{false, "[CLS] i want to read a book, then unbelievable books. [SEP]"},
	}
	for _, tc := range tests {
		got, err := tok.Decode(enc.IDs, tc.skip)
		if err != nil || got != tc.want {
			t.Errorf("Decode(skip=%v) = %q, %v; want %q", tc.skip, got, err, tc.want)
		}
	}
	if _, err := tok.Decode([]int{5, 999}, false); err == nil {
		t.Error("Decode with an unknown id succeeded")
	}
}

func TestFromVocabErrors(t *testing.T) {
	tests := []struct {
		name  string
		vocab []string
	}{
		{"empty", nil},
		{"missing mask", []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]"}},
		{"duplicate", []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "a"}},
		{"empty token", []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ""}},
	}
	for _, tc := range tests {
		if _, err := FromVocab(tc.vocab, DefaultOptions()); err == nil {
			t.Errorf("%s: FromVocab succeeded", tc.name)
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	tok := newTestTokenizer(t)
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("Save did not write %s: %v", name, err)
		}
	}
	fromJSON, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Without tokenizer.json, vocab.txt + tokenizer_config.json are used.
	if err := os.Remove(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	fromTxt, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range append(hardCases(), "I want to [MASK] a book.") {
		want, err := tok.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		for name, l := range map[string]*Tokenizer{"tokenizer.json": fromJSON, "vocab.txt": fromTxt} {
			got, err := l.Encode(text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: Encode(%q) = %v, want %v", name, text, got.IDs, want.IDs)
			}
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
	}{
		{"empty dir", nil},
		{"bad json", map[string]string{"tokenizer.json": "{"}},
		{"bpe model", map[string]string{"tokenizer.json": `{"model":{"type":"BPE","vocab":{}},"pre_tokenizer":{"type":"ByteLevel"}}`}},
		{"bad strip_accents", map[string]string{"tokenizer.json": `{"normalizer":{"type":"BertNormalizer","strip_accents":"yes"},"pre_tokenizer":{"type":"BertPreTokenizer"},"model":{"type":"WordPiece","vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"[MASK]":4}}}`}},
		{"no mask in vocab.txt", map[string]string{"vocab.txt": "[PAD]\n[UNK]\n[CLS]\n[SEP]\n"}},
		{"bad tokenizer_config", map[string]string{"vocab.txt": "[PAD]\n", "tokenizer_config.json": "[1,2"}},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		for name, content := range tc.files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Load(dir); err == nil {
			t.Errorf("%s: Load succeeded", tc.name)
		}
	}
}

// TestEncodeRandomUnicodeNeverFails encodes random strings of arbitrary code
// points and bytes (invalid UTF-8 included) and checks the invariants of
// every encoding.
func TestEncodeRandomUnicodeNeverFails(t *testing.T) {
	tok := newTestTokenizer(t)
	rng := rand.New(rand.NewPCG(1, 2))
	pick := []rune{'[', ']', ' ', 'a', 'K', 0x130, 0x1E9E, 0x212A, 0x301, 0xA0, 0x3000, 0xE000, 0, 0xFFFD}
	for range 3000 {
		var b []byte
		for range rng.IntN(40) {
			switch rng.IntN(5) {
			case 0:
				b = append(b, byte(rng.IntN(256)))
			case 1:
				b = utf8.AppendRune(b, pick[rng.IntN(len(pick))])
			case 2:
				b = append(b, "[MASK]"...)
			default:
				b = utf8.AppendRune(b, rune(rng.IntN(utf8.MaxRune+1)))
			}
		}
		text := string(b)
		enc, err := tok.Encode(text)
		if err != nil {
			t.Fatalf("Encode(%q): %v", text, err)
		}
		checkEncoding(t, tok, text, enc)
	}
}

func checkEncoding(t testing.TB, tok *Tokenizer, text string, enc *Encoding) {
	t.Helper()
	n := len(enc.IDs)
	if n < 2 || len(enc.Tokens) != n || len(enc.Offsets) != n || len(enc.Special) != n {
		t.Fatalf("Encode(%q): inconsistent encoding %+v", text, enc)
	}
	if enc.IDs[0] != tok.CLSID() || enc.IDs[n-1] != tok.SEPID() {
		t.Fatalf("Encode(%q): missing [CLS]/[SEP]", text)
	}
	for i, o := range enc.Offsets {
		if o[0] < 0 || o[0] > o[1] || o[1] > len(text) {
			t.Fatalf("Encode(%q): offset %v out of range", text, o)
		}
		if enc.IDs[i] < 0 || enc.IDs[i] >= tok.VocabSize() {
			t.Fatalf("Encode(%q): id %d out of range", text, enc.IDs[i])
		}
	}
}

// FuzzEncode checks that no input makes Encode fail or break its
// invariants.
func FuzzEncode(f *testing.F) {
	for _, s := range hardCases() {
		f.Add(s)
	}
	tok := newTestTokenizer(f)
	f.Fuzz(func(t *testing.T, text string) {
		enc, err := tok.Encode(text)
		if err != nil {
			t.Fatalf("Encode(%q): %v", text, err)
		}
		checkEncoding(t, tok, text, enc)
	})
}

func TestTrainWordPiece(t *testing.T) {
	corpus := []string{
		"the cat sat on the mat", "the cats sat on the mats", "a cat and a hat",
		"Hats and cats!", "Café crème", "the theory of the thing",
	}
	train := func() *Tokenizer {
		tok, err := TrainWordPiece(context.Background(), lines(corpus), TrainOptions{VocabSize: 60, Lowercase: true})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tok := train()
	for i, want := range DefaultSpecialTokens() {
		if got, _ := tok.IDToToken(i); got != want {
			t.Errorf("id %d = %q, want %q", i, got, want)
		}
	}
	if tok.VocabSize() > 60 {
		t.Errorf("vocabulary size %d exceeds 60", tok.VocabSize())
	}
	// Every alphabet character is present bare and with the prefix (where it
	// occurs inside a word), and merges exist.
	for _, s := range []string{"t", "##h", "##e", "c", "##a", "the", "cat"} {
		if _, ok := tok.TokenToID(s); !ok {
			t.Errorf("vocabulary lacks %q: %q", s, tok.vocab)
		}
	}
	for _, s := range tok.vocab {
		if strings.Contains(s, "0x") || strings.Count(s, "##") > 1 || s != strings.ToLower(s) && !strings.HasPrefix(s, "[") {
			t.Errorf("malformed token %q", s)
		}
	}
	p, err := tok.WordPieces("cats")
	if err != nil || p.Unknown || len(p.Tokens) == 0 {
		t.Errorf("WordPieces(cats) = %+v, %v", p, err)
	}
	if again := train(); !reflect.DeepEqual(again.vocab, tok.vocab) {
		t.Error("training is not deterministic")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	many := make([]string, 5000)
	for i := range many {
		many[i] = corpus[i%len(corpus)]
	}
	if _, err := TrainWordPiece(ctx, lines(many), TrainOptions{VocabSize: 100, Lowercase: true}); err == nil {
		t.Error("training with a cancelled context succeeded")
	}
	if _, err := TrainWordPiece(context.Background(), lines(corpus), TrainOptions{VocabSize: 0}); err == nil {
		t.Error("training with vocabulary size 0 succeeded")
	}
}

func TestTrainMinFrequencyAndAlphabetLimit(t *testing.T) {
	corpus := []string{"aaaa bbbb", "aaaa", "ab xyz"}
	tok, err := TrainWordPiece(context.Background(), lines(corpus), TrainOptions{VocabSize: 100, MinFrequency: 2, LimitAlphabet: 2, Lowercase: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"x", "y", "z"} {
		if _, ok := tok.TokenToID(s); ok {
			t.Errorf("rare character %q kept despite LimitAlphabet 2", s)
		}
	}
	if _, ok := tok.TokenToID("aaaa"); !ok {
		t.Errorf("frequent word not merged: %q", tok.vocab)
	}
	// "##b##b" pairs occur 3×2 times, so merges happen; "ab" occurs once and
	// must not be merged with MinFrequency 2.
	if _, ok := tok.TokenToID("ab"); ok {
		t.Errorf("pair below MinFrequency merged: %q", tok.vocab)
	}
}

func BenchmarkEncodeWordNet(b *testing.B) {
	texts := wordnetLines(b, 2000)
	tok, err := TrainWordPiece(context.Background(), lines(texts), TrainOptions{VocabSize: 8000, Lowercase: true, LimitAlphabet: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if _, err := tok.Encode(texts[n%len(texts)]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkTrainWordPiece8k(b *testing.B) {
	texts := wordnetLines(b, 0)
	b.ResetTimer()
	for b.Loop() {
		tok, err := TrainWordPiece(context.Background(), lines(texts), TrainOptions{VocabSize: 8000, Lowercase: true, LimitAlphabet: 1000})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(texts)), "lines")
		b.ReportMetric(float64(tok.VocabSize()), "vocab")
	}
}
