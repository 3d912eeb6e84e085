// Code generated from an exhaustive probe of Hugging Face tokenizers 0.22.2
// (via @anush008/tokenizers 0.6.0, tools/hfparity); DO NOT EDIT.
// TestUnicodeParityExhaustive and TestByteLevelSplitParityExhaustive verify
// every code point against the library.

package tokenize

import "unicode"

// hfNoDecompose lists the code points that have a canonical decomposition for Go but none for Hugging Face's normaliser.
var hfNoDecompose = &unicode.RangeTable{
	R32: []unicode.Range32{
		{0x11938, 0x11938, 1},
	},
}

// hfOtherExtra lists the code points that are "other" (dropped by clean-text) for Hugging Face but not Cc/Cf/Co/Cs for Go.
var hfOtherExtra = &unicode.RangeTable{}

// hfOtherMissing lists the code points that are Cc/Cf/Co/Cs for Go but kept by Hugging Face's clean-text.
var hfOtherMissing = &unicode.RangeTable{
	R16: []unicode.Range16{
		{0x0890, 0x0891, 1},
		{0x08E2, 0x08E2, 1},
	},
	R32: []unicode.Range32{
		{0x110CD, 0x110CD, 1},
		{0x13430, 0x1343F, 1},
	},
}

// hfMnExtra lists the code points that are non-spacing marks for Hugging Face but not for Go.
var hfMnExtra = &unicode.RangeTable{
	R16: []unicode.Range16{
		{0x1734, 0x1734, 1},
	},
}

// hfMnMissing lists the code points that are non-spacing marks for Go but not for Hugging Face.
var hfMnMissing = &unicode.RangeTable{
	R16: []unicode.Range16{
		{0x07FD, 0x07FD, 1},
		{0x0898, 0x089F, 1},
		{0x08CA, 0x08E1, 1},
		{0x09FE, 0x09FE, 1},
		{0x0AFA, 0x0AFF, 1},
		{0x0B55, 0x0B55, 1},
		{0x0C04, 0x0C04, 1},
		{0x0C3C, 0x0C3C, 1},
		{0x0D00, 0x0D00, 1},
		{0x0D3B, 0x0D3C, 1},
		{0x0D81, 0x0D81, 1},
		{0x0EBA, 0x0EBA, 1},
		{0x0ECE, 0x0ECE, 1},
		{0x180F, 0x180F, 1},
		{0x1885, 0x1886, 1},
		{0x1ABF, 0x1ACE, 1},
		{0x1DF6, 0x1DFB, 1},
		{0xA82C, 0xA82C, 1},
		{0xA8C5, 0xA8C5, 1},
		{0xA8FF, 0xA8FF, 1},
		{0xA9BD, 0xA9BD, 1},
	},
	R32: []unicode.Range32{
		{0x10D24, 0x10D27, 1},
		{0x10EAB, 0x10EAC, 1},
		{0x10EFD, 0x10EFF, 1},
		{0x10F46, 0x10F50, 1},
		{0x10F82, 0x10F85, 1},
		{0x11070, 0x11070, 1},
		{0x11073, 0x11074, 1},
		{0x110C2, 0x110C2, 1},
		{0x111C9, 0x111C9, 1},
		{0x111CF, 0x111CF, 1},
		{0x1123E, 0x1123E, 1},
		{0x11241, 0x11241, 1},
		{0x1133B, 0x1133B, 1},
		{0x11438, 0x1143F, 1},
		{0x11442, 0x11444, 1},
		{0x11446, 0x11446, 1},
		{0x1145E, 0x1145E, 1},
		{0x1182F, 0x11837, 1},
		{0x11839, 0x1183A, 1},
		{0x1193B, 0x1193C, 1},
		{0x1193E, 0x1193E, 1},
		{0x11943, 0x11943, 1},
		{0x119D4, 0x119D7, 1},
		{0x119DA, 0x119DB, 1},
		{0x119E0, 0x119E0, 1},
		{0x11A01, 0x11A0A, 1},
		{0x11A33, 0x11A38, 1},
		{0x11A3B, 0x11A3E, 1},
		{0x11A47, 0x11A47, 1},
		{0x11A51, 0x11A56, 1},
		{0x11A59, 0x11A5B, 1},
		{0x11A8A, 0x11A96, 1},
		{0x11A98, 0x11A99, 1},
		{0x11C30, 0x11C36, 1},
		{0x11C38, 0x11C3D, 1},
		{0x11C3F, 0x11C3F, 1},
		{0x11C92, 0x11CA7, 1},
		{0x11CAA, 0x11CB0, 1},
		{0x11CB2, 0x11CB3, 1},
		{0x11CB5, 0x11CB6, 1},
		{0x11D31, 0x11D36, 1},
		{0x11D3A, 0x11D3A, 1},
		{0x11D3C, 0x11D3D, 1},
		{0x11D3F, 0x11D45, 1},
		{0x11D47, 0x11D47, 1},
		{0x11D90, 0x11D91, 1},
		{0x11D95, 0x11D95, 1},
		{0x11D97, 0x11D97, 1},
		{0x11EF3, 0x11EF4, 1},
		{0x11F00, 0x11F01, 1},
		{0x11F36, 0x11F3A, 1},
		{0x11F40, 0x11F40, 1},
		{0x11F42, 0x11F42, 1},
		{0x13440, 0x13440, 1},
		{0x13447, 0x13455, 1},
		{0x16F4F, 0x16F4F, 1},
		{0x16FE4, 0x16FE4, 1},
		{0x1CF00, 0x1CF2D, 1},
		{0x1CF30, 0x1CF46, 1},
		{0x1E000, 0x1E006, 1},
		{0x1E008, 0x1E018, 1},
		{0x1E01B, 0x1E021, 1},
		{0x1E023, 0x1E024, 1},
		{0x1E026, 0x1E02A, 1},
		{0x1E08F, 0x1E08F, 1},
		{0x1E130, 0x1E136, 1},
		{0x1E2AE, 0x1E2AE, 1},
		{0x1E2EC, 0x1E2EF, 1},
		{0x1E4EC, 0x1E4EF, 1},
		{0x1E944, 0x1E94A, 1},
	},
}

// hfPunctExtra lists the code points that are punctuation for Hugging Face's BertPreTokenizer but not for Go.
var hfPunctExtra = &unicode.RangeTable{
	R16: []unicode.Range16{
		{0x166D, 0x166D, 1},
	},
	R32: []unicode.Range32{
		{0x111C9, 0x111C9, 1},
	},
}

// hfPunctMissing lists the code points that are punctuation for Go but not for Hugging Face's BertPreTokenizer.
var hfPunctMissing = &unicode.RangeTable{
	R16: []unicode.Range16{
		{0x061D, 0x061D, 1},
		{0x09FD, 0x09FD, 1},
		{0x0A76, 0x0A76, 1},
		{0x0C77, 0x0C77, 1},
		{0x0C84, 0x0C84, 1},
		{0x1B7D, 0x1B7E, 1},
		{0x2E43, 0x2E4F, 1},
		{0x2E52, 0x2E5D, 1},
	},
	R32: []unicode.Range32{
		{0x10EAD, 0x10EAD, 1},
		{0x10F55, 0x10F59, 1},
		{0x10F86, 0x10F89, 1},
		{0x1144B, 0x1144F, 1},
		{0x1145A, 0x1145B, 1},
		{0x1145D, 0x1145D, 1},
		{0x11660, 0x1166C, 1},
		{0x116B9, 0x116B9, 1},
		{0x1183B, 0x1183B, 1},
		{0x11944, 0x11946, 1},
		{0x119E2, 0x119E2, 1},
		{0x11A3F, 0x11A46, 1},
		{0x11A9A, 0x11A9C, 1},
		{0x11A9E, 0x11AA2, 1},
		{0x11B00, 0x11B09, 1},
		{0x11C41, 0x11C45, 1},
		{0x11C70, 0x11C71, 1},
		{0x11EF7, 0x11EF8, 1},
		{0x11F43, 0x11F4F, 1},
		{0x11FFF, 0x11FFF, 1},
		{0x12FF1, 0x12FF2, 1},
		{0x16E97, 0x16E9A, 1},
		{0x16FE2, 0x16FE2, 1},
		{0x1E95E, 0x1E95F, 1},
	},
}

// gpt2LetterExtra lists the code points that are letters (\p{L}) for the ByteLevel pre-tokenizer's split pattern but not for Go.
var gpt2LetterExtra = &unicode.RangeTable{
	R16: []unicode.Range16{
		{0x1C89, 0x1C8A, 1},
		{0xA7CB, 0xA7CD, 1},
		{0xA7DA, 0xA7DC, 1},
	},
	R32: []unicode.Range32{
		{0x105C0, 0x105F3, 1},
		{0x10D4A, 0x10D65, 1},
		{0x10D6F, 0x10D85, 1},
		{0x10EC2, 0x10EC4, 1},
		{0x11380, 0x11389, 1},
		{0x1138B, 0x1138B, 1},
		{0x1138E, 0x1138E, 1},
		{0x11390, 0x113B5, 1},
		{0x113B7, 0x113B7, 1},
		{0x113D1, 0x113D1, 1},
		{0x113D3, 0x113D3, 1},
		{0x11BC0, 0x11BE0, 1},
		{0x13460, 0x143FA, 1},
		{0x16100, 0x1611D, 1},
		{0x16D40, 0x16D6C, 1},
		{0x18CFF, 0x18CFF, 1},
		{0x1E5D0, 0x1E5ED, 1},
		{0x1E5F0, 0x1E5F0, 1},
		{0x2EBF0, 0x2EE5D, 1},
	},
}

// gpt2LetterMissing lists the code points that are letters for Go but not for the ByteLevel pre-tokenizer's split pattern.
var gpt2LetterMissing = &unicode.RangeTable{}

// gpt2NumberExtra lists the code points that are numbers (\p{N}) for the ByteLevel pre-tokenizer's split pattern but not for Go.
var gpt2NumberExtra = &unicode.RangeTable{
	R32: []unicode.Range32{
		{0x10D40, 0x10D49, 1},
		{0x116D0, 0x116E3, 1},
		{0x11BF0, 0x11BF9, 1},
		{0x16130, 0x16139, 1},
		{0x16D70, 0x16D79, 1},
		{0x1CCF0, 0x1CCF9, 1},
		{0x1E5F1, 0x1E5FA, 1},
	},
}

// gpt2NumberMissing lists the code points that are numbers for Go but not for the ByteLevel pre-tokenizer's split pattern.
var gpt2NumberMissing = &unicode.RangeTable{}

// gpt2SpaceExtra lists the code points that are whitespace (\s) for the ByteLevel pre-tokenizer's split pattern but not for Go.
var gpt2SpaceExtra = &unicode.RangeTable{}

// gpt2SpaceMissing lists the code points that are whitespace for Go but not for the ByteLevel pre-tokenizer's split pattern.
var gpt2SpaceMissing = &unicode.RangeTable{}

// hfLower returns Rust's lowercase mapping of r where it differs from Go's
// unicode.ToLower, and false elsewhere.
func hfLower(r rune) (rune, bool) {
	switch r {
	case 0x1C89:
		return 0x1C8A, true
	case 0xA7CB:
		return 0x0264, true
	case 0xA7CC:
		return 0xA7CD, true
	case 0xA7CE:
		return 0xA7CF, true
	case 0xA7D2:
		return 0xA7D3, true
	case 0xA7D4:
		return 0xA7D5, true
	case 0xA7DA:
		return 0xA7DB, true
	case 0xA7DC:
		return 0x019B, true
	case 0x10D50:
		return 0x10D70, true
	case 0x10D51:
		return 0x10D71, true
	case 0x10D52:
		return 0x10D72, true
	case 0x10D53:
		return 0x10D73, true
	case 0x10D54:
		return 0x10D74, true
	case 0x10D55:
		return 0x10D75, true
	case 0x10D56:
		return 0x10D76, true
	case 0x10D57:
		return 0x10D77, true
	case 0x10D58:
		return 0x10D78, true
	case 0x10D59:
		return 0x10D79, true
	case 0x10D5A:
		return 0x10D7A, true
	case 0x10D5B:
		return 0x10D7B, true
	case 0x10D5C:
		return 0x10D7C, true
	case 0x10D5D:
		return 0x10D7D, true
	case 0x10D5E:
		return 0x10D7E, true
	case 0x10D5F:
		return 0x10D7F, true
	case 0x10D60:
		return 0x10D80, true
	case 0x10D61:
		return 0x10D81, true
	case 0x10D62:
		return 0x10D82, true
	case 0x10D63:
		return 0x10D83, true
	case 0x10D64:
		return 0x10D84, true
	case 0x10D65:
		return 0x10D85, true
	case 0x16EA0:
		return 0x16EBB, true
	case 0x16EA1:
		return 0x16EBC, true
	case 0x16EA2:
		return 0x16EBD, true
	case 0x16EA3:
		return 0x16EBE, true
	case 0x16EA4:
		return 0x16EBF, true
	case 0x16EA5:
		return 0x16EC0, true
	case 0x16EA6:
		return 0x16EC1, true
	case 0x16EA7:
		return 0x16EC2, true
	case 0x16EA8:
		return 0x16EC3, true
	case 0x16EA9:
		return 0x16EC4, true
	case 0x16EAA:
		return 0x16EC5, true
	case 0x16EAB:
		return 0x16EC6, true
	case 0x16EAC:
		return 0x16EC7, true
	case 0x16EAD:
		return 0x16EC8, true
	case 0x16EAE:
		return 0x16EC9, true
	case 0x16EAF:
		return 0x16ECA, true
	case 0x16EB0:
		return 0x16ECB, true
	case 0x16EB1:
		return 0x16ECC, true
	case 0x16EB2:
		return 0x16ECD, true
	case 0x16EB3:
		return 0x16ECE, true
	case 0x16EB4:
		return 0x16ECF, true
	case 0x16EB5:
		return 0x16ED0, true
	case 0x16EB6:
		return 0x16ED1, true
	case 0x16EB7:
		return 0x16ED2, true
	case 0x16EB8:
		return 0x16ED3, true
	}
	return 0, false
}
