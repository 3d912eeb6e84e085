package main

import (
	"encoding/json"
	"io"
)

// writeJSON writes v as indented JSON followed by a newline: the --json form
// of every command that prints results.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
