package dataset_test

import (
	"context"
	"testing"

	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/models"
	"github.com/clozeloop/clozeloop/tokenize"
)

// TestSupersenseAnswersAreSinglePieces proves that every answer of the
// supersense task is one word piece of the shipped model's vocabulary, so
// the task is a closed-set classification over single tokens.
func TestSupersenseAnswersAreSinglePieces(t *testing.T) {
	dir := t.TempDir()
	if _, err := models.WriteTo(context.Background(), models.WordNetSmall, dir); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range dataset.SupersenseAnswers() {
		p, err := tok.WordPieces(w)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.IDs) != 1 || p.Unknown || p.Tokens[0] != w {
			t.Errorf("answer %q is %v in %s's vocabulary, want one piece", w, p.Tokens, models.WordNetSmall)
		}
	}
}
