package tokenize

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// hfSetupHint tells how to install the Hugging Face reference tokenizer.
const hfSetupHint = "run `make tools` / `npm ci --prefix tools/hfparity` to install the Hugging Face tokenizers reference (tools/hfparity)"

// hf talks to tools/hfparity/parity.js, which answers with the real Hugging
// Face tokenizers library.
type hf struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// requireSetup skips the test when something it needs is missing, or fails
// it when CI=true (CI must run every parity test).
func requireSetup(t *testing.T, ok bool, msg string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// startHF starts the reference process for the duration of the test.
func startHF(t *testing.T) *hf {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "tools", "hfparity")
	_, statErr := os.Stat(filepath.Join(dir, "node_modules", "@anush008", "tokenizers", "index.js"))
	requireSetup(t, statErr == nil, hfSetupHint)
	node, lookErr := exec.LookPath("node")
	requireSetup(t, lookErr == nil, "node is not installed; "+hfSetupHint)
	cmd := exec.Command(node, filepath.Join(dir, "parity.js"))
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd, err)
	}
	h := &hf{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	t.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("parity.js exited: %v", err)
		}
	})
	return h
}

// call sends one request and decodes the results into res.
func (h *hf) call(t *testing.T, req map[string]any, res any) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.in.Write(append(b, '\n')); err != nil {
		t.Fatalf("write to parity.js: %v", err)
	}
	// The trainer's progress output (the "train" op) writes bare newlines
	// to stdout when it is not a terminal: skip blank lines.
	var line []byte
	for len(bytes.TrimSpace(line)) == 0 {
		var err error
		if line, err = h.out.ReadBytes('\n'); err != nil {
			t.Fatalf("read from parity.js: %v", err)
		}
	}
	var resp struct {
		Results json.RawMessage `json:"results"`
		Error   string          `json:"error"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		t.Fatalf("parse parity.js answer: %v", err)
	}
	if resp.Error != "" {
		t.Fatalf("parity.js %s: %s", req["op"], resp.Error)
	}
	if err := json.Unmarshal(resp.Results, res); err != nil {
		t.Fatalf("parse parity.js results: %v", err)
	}
}

type hfEncoding struct {
	IDs     []int    `json:"ids"`
	Tokens  []string `json:"tokens"`
	Offsets [][2]int `json:"offsets"`
}

func (h *hf) encode(t *testing.T, tokenizerJSON string, texts []string, addSpecial bool) []hfEncoding {
	t.Helper()
	var res []hfEncoding
	h.call(t, map[string]any{"op": "encode", "tokenizer": tokenizerJSON, "texts": texts, "add_special_tokens": addSpecial}, &res)
	if len(res) != len(texts) {
		t.Fatalf("parity.js returned %d encodings for %d texts", len(res), len(texts))
	}
	return res
}

// charOffsets converts byte offsets in s to code point offsets, the unit the
// Hugging Face binding reports.
func charOffsets(s string, offs [][2]int) [][2]int {
	idx := make([]int, len(s)+1)
	n := 0
	for i := range len(s) + 1 {
		idx[i] = n
		if i < len(s) && utf8.RuneStart(s[i]) {
			n++
		}
	}
	// idx[i] counts rune starts before byte i.
	out := make([][2]int, len(offs))
	for i, o := range offs {
		out[i] = [2]int{idx[o[0]], idx[o[1]]}
	}
	return out
}

// compareEncodings encodes texts with tok and with Hugging Face and reports
// every text whose ids, tokens or offsets differ. It returns the number of
// texts with differing ids.
func compareEncodings(t *testing.T, h *hf, tok *Tokenizer, tokenizerJSON string, texts []string) int {
	t.Helper()
	want := h.encode(t, tokenizerJSON, texts, true)
	idDiffs := 0
	for i, text := range texts {
		got, err := tok.Encode(text)
		if err != nil {
			t.Errorf("Encode(%q): %v", text, err)
			idDiffs++
			continue
		}
		if !equalInts(got.IDs, want[i].IDs) {
			idDiffs++
			t.Errorf("ids differ for %q:\n  ours %v %q\n  hf   %v %q", text, got.IDs, got.Tokens, want[i].IDs, want[i].Tokens)
			continue
		}
		if !equalStrings(got.Tokens, want[i].Tokens) {
			t.Errorf("tokens differ for %q:\n  ours %q\n  hf   %q", text, got.Tokens, want[i].Tokens)
		}
		if co := charOffsets(text, got.Offsets); !equalOffsets(co, want[i].Offsets) {
			t.Errorf("offsets differ for %q (tokens %q):\n  ours %v\n  hf   %v", text, want[i].Tokens, co, want[i].Offsets)
		}
	}
	return idDiffs
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalOffsets(a, b [][2]int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// wordnetLines returns up to n gloss lines (definitions and quoted examples)
// from the WordNet database, taken evenly from the noun, verb, adjective and
// adverb files.
func wordnetLines(t testing.TB, n int) []string {
	t.Helper()
	var all []string
	for _, pos := range []string{"noun", "verb", "adj", "adv"} {
		path := filepath.Join("/usr/share/wordnet", "data."+pos)
		f, err := os.Open(path)
		if err != nil {
			if os.IsNotExist(err) {
				if tt, ok := t.(*testing.T); ok {
					requireSetup(tt, false, "WordNet is not installed (apt-get install wordnet-base)")
				}
				t.Skip("WordNet is not installed (apt-get install wordnet-base)")
			}
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "  ") {
				continue // licence header
			}
			_, gloss, ok := strings.Cut(line, " | ")
			if !ok {
				continue
			}
			for _, part := range strings.Split(gloss, "; ") {
				part = strings.TrimSpace(strings.Trim(strings.TrimSpace(part), `"`))
				if part != "" {
					all = append(all, part)
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
	}
	if n <= 0 || n >= len(all) {
		return all
	}
	out := make([]string, 0, n)
	step := float64(len(all)) / float64(n)
	for i := range n {
		out = append(out, all[int(float64(i)*step)])
	}
	return out
}

// hardCases are texts on which sugarme/tokenizer v0.3.0 or a naive BERT
// pipeline goes wrong.
func hardCases() []string {
	long := strings.Repeat("a", 100)
	return []string{
		"", " ", "   ", "\t\n\r", "\u00a0", "\u3000\u3000",
		"Héllo wörld", "café crème brûlée", "naïve résumé", "São Paulo", "Ångström", "Ærøskøbing",
		"Zürich straße", "ŁÓDŹ", "Crème Brûlée", "e\u0301t\u0301e\u0301", "ﬁ ligature ﬂ",
		"a\u00a0b", "a\u2003b", "a\u3000b", "a\u2009b\u200ac", "a\u2028b\u2029c", "a\u202fb\u205fc", "a\u1680b",
		"a\u0085b", "a\u200bb", "a\ufeffb", "a\u00adb", "a\u200db",
		"中文字符", "我爱北京天安门", "日本語のテキスト", "한국어 텍스트", "mixed中english文",
		"𠀀𪜀𫝀", "emoji 😀 test", "👍🏽 thumbs", "👨‍👩‍👧 family", "🥲 new emoji", "flags 🇫🇷🇩🇪",
		"a\x00b", "a\x01b\x02c", "a\x7fb", "tab\tsep", "bell\a", "a\ufffdb",
		"private \ue000\uf8ff use", "\U000f0000 plane 15", "unassigned \u0378 \U000e0080",
		"ẞ", "GROẞ", "İstanbul", "İ", "\u212a kelvin", "\u2126 ohm", "Σίσυφος ΟΔΥΣΣΕΥΣ", "ǅ ǈ ǋ",
		"!!!", "...", "?!?!", "a--b", "(hello)", "\"quoted\"", "it's", "don't", "$100.00", "#hashtag", "@user",
		"«guillemets»", "„German“", "—em-dash—", "…ellipsis", "¿Qué?", "¡Hola!", "a/b\\c", "~`^|",
		long, long + "a", "x" + long, strings.Repeat("ab ", 60), "supercalifragilisticexpialidocious",
		"pneumonoultramicroscopicsilicovolcanoconiosis",
		"[MASK]", "[MASK][MASK]", "I want to [MASK] a book", "[MASK] then [PAD]", "[PAD] then [MASK]",
		"[CLS] a [SEP] b [SEP]", "[UNK] and [MASK] and [SEP]", "a[MASK]b", "[mask] lower", "[MASK", "MASK]",
		"[[MASK]]", "[MASK ]", " [MASK] ", "[SEP][CLS][PAD][UNK][MASK]", "The [MASK] sat on the [MASK].",
		"x\u0301\u0302\u0303", "\u0301 leading mark", "ǆemal", "ﬀ", "Ⅻ roman", "①②③", "½ ¾", "x²", "H₂O",
		"  leading and trailing  ", "multiple     spaces", "line\nbreaks\r\nhere",
		"ĳ Ĳ", "ŉ", "ΐ", "\u1e9e\u0130\u212a", "ß", "ﬃ", "Ⓐ", "ａｂｃ fullwidth", "１２３",
	}
}
