package tokenize

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// precompiledNorm is the Precompiled normaliser: SentencePiece's compiled
// normalisation rules (as in XLM-RoBERTa's tokenizer.json), a
// darts-clone double-array trie over the UTF-8 of the texts to replace and
// a blob of NUL-terminated replacements. It is applied as Hugging Face's
// spm_precompiled crate applies it: per extended grapheme cluster, a
// cluster shorter than 6 bytes that the trie matches is replaced whole,
// otherwise each character on its own. The trie lookup takes the shortest
// matching prefix, so a cluster whose first character alone has a rule is
// replaced by that character's replacement (SentencePiece's behaviour,
// which Hugging Face keeps).
type precompiledNorm struct {
	trie       []uint32
	normalized []byte
}

// parsePrecompiled reads a Precompiled normaliser's base64 charsmap: a
// little-endian uint32 with the trie's size in bytes, the trie's units,
// then the replacement blob (UTF-8). An empty charsmap normalises nothing.
func parsePrecompiled(charsmap string) (normStep, error) {
	b, err := base64.StdEncoding.DecodeString(charsmap)
	if err != nil {
		return nil, fmt.Errorf("normalizer Precompiled: precompiled_charsmap is not base64: %w", err)
	}
	if len(b) < 4 {
		return nil, errors.New("normalizer Precompiled: precompiled_charsmap is too short")
	}
	n := int(binary.LittleEndian.Uint32(b)) / 4
	if n < 1 || len(b) < 4+4*n {
		return nil, fmt.Errorf("normalizer Precompiled: precompiled_charsmap announces %d trie units but has room for %d", n, (len(b)-4)/4)
	}
	p := &precompiledNorm{trie: make([]uint32, n), normalized: b[4+4*n:]}
	for i := range p.trie {
		p.trie[i] = binary.LittleEndian.Uint32(b[4+4*i:])
	}
	if !utf8.Valid(p.normalized) {
		return nil, errors.New("normalizer Precompiled: the replacement blob of precompiled_charsmap is not UTF-8")
	}
	return p, nil
}

// Units of the double array: a node's label (with bit 31 set for a value
// unit, which no byte matches), whether it has a value (bit 8), and the
// XOR offset to its children (bits 10-31, shifted by 8 when bit 9 is set).
func unitLabel(u uint32) uint32  { return u & (1<<31 | 0xFF) }
func unitHasLeaf(u uint32) bool  { return u>>8&1 == 1 }
func unitValue(u uint32) int     { return int(u & (1<<31 - 1)) }
func unitOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

// lookup returns the replacement of the shortest prefix of key that the
// trie holds (a NUL byte ends the key).
func (p *precompiledNorm) lookup(key []byte) (string, bool) {
	pos := unitOffset(p.trie[0])
	for _, c := range key {
		if c == 0 {
			break
		}
		pos ^= uint32(c)
		if int(pos) >= len(p.trie) {
			return "", false
		}
		u := p.trie[pos]
		if unitLabel(u) != uint32(c) {
			return "", false
		}
		pos ^= unitOffset(u)
		if unitHasLeaf(u) {
			if int(pos) >= len(p.trie) {
				return "", false
			}
			start := unitValue(p.trie[pos])
			if start > len(p.normalized) {
				return "", true
			}
			end := start
			for end < len(p.normalized) && p.normalized[end] != 0 {
				end++
			}
			return string(p.normalized[start:end]), true
		}
	}
	return "", false
}

// apply implements normStep. Replacing a piece of n characters by one of
// m, the m characters replace it (0) when m = n, the last m - n are
// inserted when m > n, and when m < n the last edit so far (possibly of an
// earlier piece) absorbs the removal, as Hugging Face's Precompiled does.
func (p *precompiledNorm) apply(n *normalized) {
	s := n.text
	edits := make([]edit, 0, len(s))
	modified := false
	replace := func(old []byte, repl string) {
		modified = true
		for _, r := range repl {
			edits = append(edits, edit{r, 0})
		}
		diff := utf8.RuneCountInString(repl) - utf8.RuneCount(old)
		switch {
		case diff > 0:
			for k := len(edits) - diff; k < len(edits); k++ {
				edits[k].change = 1
			}
		case diff < 0 && len(edits) > 0:
			edits[len(edits)-1].change += diff
		}
	}
	state := -1
	for rest := s; len(rest) > 0; {
		var g []byte
		g, rest, _, state = uniseg.FirstGraphemeCluster(rest, state)
		if len(g) < 6 {
			if repl, ok := p.lookup(g); ok {
				replace(g, repl)
				continue
			}
		}
		for i := 0; i < len(g); {
			r, size := utf8.DecodeRune(g[i:])
			part := g[i : i+size]
			i += size
			if repl, ok := p.lookup(part); ok {
				replace(part, repl)
				continue
			}
			edits = append(edits, edit{r, 0})
		}
	}
	if modified {
		n.transform(edits, 0)
	}
}
