package tokenize

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// buildCharsmap compiles replacement rules into SentencePiece's
// precompiled_charsmap format (the darts-clone double array that
// Hugging Face's spm_precompiled crate reads, then the NUL-terminated
// replacements), base64-encoded as tokenizer.json stores it. Keys must not
// contain NUL.
func buildCharsmap(t testing.TB, rules map[string]string) string {
	t.Helper()
	type node struct {
		children map[byte]*node
		value    int // offset of the replacement in the blob, -1 for none
		pos      uint32
	}
	newNode := func() *node { return &node{children: map[byte]*node{}, value: -1} }
	root := newNode()
	var blob []byte
	keys := make([]string, 0, len(rules))
	for k := range rules {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" || strings.IndexByte(k, 0) >= 0 {
			t.Fatalf("charsmap key %q is empty or has NUL", k)
		}
		n := root
		for i := 0; i < len(k); i++ {
			c := n.children[k[i]]
			if c == nil {
				c = newNode()
				n.children[k[i]] = c
			}
			n = c
		}
		n.value = len(blob)
		blob = append(append(blob, rules[k]...), 0)
	}
	units := []uint32{0}
	used := []bool{true}
	grow := func(p uint32) {
		for int(p) >= len(units) {
			units = append(units, 0)
			used = append(used, false)
		}
	}
	free := func(p uint32) bool { return int(p) >= len(used) || !used[p] }
	queue := []*node{root}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		labels := make([]byte, 0, len(n.children))
		for c := range n.children {
			labels = append(labels, c)
		}
		slices.Sort(labels)
		if len(labels) == 0 && n.value < 0 {
			continue
		}
		var off uint32
		for off = 1; ; off++ {
			base := n.pos ^ off
			ok := base != 0 && (n.value < 0 || free(base))
			for _, c := range labels {
				if q := base ^ uint32(c); q == 0 || !free(q) {
					ok = false
					break
				}
			}
			if ok {
				break
			}
		}
		if off >= 1<<21 {
			t.Fatal("charsmap too large for the test builder")
		}
		units[n.pos] |= off << 10
		base := n.pos ^ off
		if n.value >= 0 {
			grow(base)
			used[base] = true
			units[base] = 1<<31 | uint32(n.value)
		}
		for _, c := range labels {
			child := n.children[c]
			q := base ^ uint32(c)
			grow(q)
			used[q] = true
			child.pos = q
			units[q] = uint32(c)
			if child.value >= 0 {
				units[q] |= 1 << 8
			}
			queue = append(queue, child)
		}
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(4*len(units)))
	for _, u := range units {
		out = binary.LittleEndian.AppendUint32(out, u)
	}
	return base64.StdEncoding.EncodeToString(append(out, blob...))
}

// testCharsmapRules are SentencePiece nmt_nfkc-like rules: NFKC for
// compatibility characters of several blocks, white space to a space,
// control and zero-width characters removed, and multi-character keys
// (which only whole grapheme clusters match; a key that is a prefix of a
// longer one wins, SentencePiece's quirk).
func testCharsmapRules() map[string]string {
	rules := map[string]string{}
	for _, rg := range [][2]rune{
		{0xA0, 0xFF}, {0x2000, 0x215F}, {0x2160, 0x218F}, {0x2460, 0x24FF}, {0x3000, 0x3000}, {0x3300, 0x33FF},
		{0xFB00, 0xFB06}, {0xFDF0, 0xFDFD}, {0xFF01, 0xFFEE}, {0x1D400, 0x1D4FF}, {0x1F100, 0x1F10A},
	} {
		for r := rg[0]; r <= rg[1]; r++ {
			if s := string(r); norm.NFKC.String(s) != s {
				rules[s] = norm.NFKC.String(s)
			}
		}
	}
	for r := rune(1); r < 0x20; r++ {
		rules[string(r)] = ""
	}
	for _, s := range []string{"\t", "\n", "\r", "\u00a0", "\u3000", "\u2003", "\u200d"} {
		rules[s] = " "
	}
	for _, s := range []string{"\u200b", "\ufeff", "\u00ad", "\x7f"} {
		rules[s] = ""
	}
	for k, v := range map[string]string{
		"e\u0301": "é", "a\u0308": "ä", "A\u030a": "Å", "ﾊﾟ": "パ", "ｶﾞ": "ガ", "\u0627\u0653": "آ",
		"…": "...", "㍿": "株式会社", "ß": "ss", "Ǆ": "DŽ", "ǆ": "dž", "ǲ": "Dz",
	} {
		rules[k] = v
	}
	return rules
}

// precompiledFromEnv returns the charsmap of the Precompiled normaliser in
// the tokenizer.json (or normalizer JSON) named by
// TOKENIZE_PRECOMPILED_JSON, such as XLM-RoBERTa's, or "" when unset.
func precompiledFromEnv(t testing.TB) string {
	path := os.Getenv("TOKENIZE_PRECOMPILED_JSON")
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var find func(v any) string
	find = func(v any) string {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["precompiled_charsmap"].(string); ok {
				return s
			}
			for _, y := range x {
				if s := find(y); s != "" {
					return s
				}
			}
		case []any:
			for _, y := range x {
				if s := find(y); s != "" {
					return s
				}
			}
		}
		return ""
	}
	s := find(v)
	if s == "" {
		t.Fatalf("%s has no precompiled_charsmap", path)
	}
	return s
}

// TestPrecompiledLookup checks the double-array reader on a charsmap built
// by the test: every rule is found, and the shortest matching prefix wins.
func TestPrecompiledLookup(t *testing.T) {
	rules := testCharsmapRules()
	step, err := parsePrecompiled(buildCharsmap(t, rules))
	if err != nil {
		t.Fatal(err)
	}
	p := step.(*precompiledNorm)
	for k, v := range rules {
		got, ok := p.lookup([]byte(k))
		want := v
		// A shorter key that is a prefix of k wins.
		for i := 1; i < len(k); i++ {
			if w, ok := rules[k[:i]]; ok {
				want = w
				break
			}
		}
		if !ok || got != want {
			t.Errorf("lookup(%q) = %q, %v; want %q", k, got, ok, want)
		}
	}
	for _, k := range []string{"a", "e", "中", "😀", "x\u0301"} {
		if got, ok := p.lookup([]byte(k)); ok {
			t.Errorf("lookup(%q) = %q, want no match", k, got)
		}
	}
	tests := []struct{ in, want string }{
		{"ﬁnal", "final"},
		{"e\u0301t\u0301e\u0301", "ét\u0301é"},
		{"ß\u0301x", "ssx"}, // "ß" is a prefix of the cluster "ß\u0301" and replaces all of it
		{"ﾊﾟﾊ", "ハ\u309aハ"}, // the cluster "ﾊﾟ" has 6 bytes: each character on its own
		{"a\u00a0\u200bb", "a b"},
		{"㍿…", "株式会社..."},
	}
	for _, tc := range tests {
		n := identity(tc.in, 0)
		p.apply(&n)
		if string(n.text) != tc.want {
			t.Errorf("normalize(%q) = %q, want %q", tc.in, n.text, tc.want)
		}
	}
}
