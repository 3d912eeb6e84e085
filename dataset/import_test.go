package dataset

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImportFailsBeforeWriting(t *testing.T) {
	out := filepath.Join(t.TempDir(), "data")
	_, err := Import(context.Background(), "testdata/pool_bad.jsonl", out, ValidateOptions{})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want *ValidationError", err)
	}
	var lines []int
	for _, le := range ve.First {
		lines = append(lines, le.Line)
	}
	if ve.Invalid != 4 || len(lines) != 4 || lines[0] != 2 || lines[1] != 4 || lines[2] != 5 || lines[3] != 6 {
		t.Errorf("invalid %d at lines %v, want 4 at [2 4 5 6]", ve.Invalid, lines)
	}
	if !strings.Contains(err.Error(), "pool_bad.jsonl:5: unknown field") {
		t.Errorf("message %q lacks file:line and reason", err)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Errorf("failed import created %s (%v)", out, serr)
	}
}

func TestImportSkipInvalid(t *testing.T) {
	out := t.TempDir()
	res, err := Import(context.Background(), "testdata/pool_bad.jsonl", out, ValidateOptions{SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != KindPool || res.Records != 3 || res.Skipped != 4 {
		t.Fatalf("result %+v, want pool, 3 records, 4 skipped", res)
	}
	items := readPool(t, filepath.Join(out, "pool_bad.jsonl"))
	if len(items) != 3 || items[1].Text != "A dog [MASK] loudly." || items[1].ID != ContentID("a dog [MASK] loudly") {
		t.Errorf("imported %+v", items)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Errorf("import left %d files, want 1", len(ents))
	}
}

func TestValidateKinds(t *testing.T) {
	ctx := context.Background()
	f, err := os.Open("testdata/pool_bad.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := NewPoolIndex(f, "pool_bad.jsonl"); err == nil {
		t.Error("indexing an invalid pool succeeded")
	}
	pool := writeTemp(t, "{\"id\":\"p1\",\"text\":\"The [MASK] sat.\"}\n{\"id\":\"p6\",\"text\":\"[MASK] [MASK]\"}\n")
	pf, err := os.Open(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	idx, err := NewPoolIndex(pf, pool)
	if err != nil || idx.Len() != 2 {
		t.Fatalf("index: %v", err)
	}
	tests := []struct {
		file    string
		opts    ValidateOptions
		kind    Kind
		records int
	}{
		{"testdata/eval.jsonl", ValidateOptions{}, KindEval, 4},
		{"testdata/labels.jsonl", ValidateOptions{}, KindLabels, 3},
		{"testdata/labels.jsonl", ValidateOptions{Pool: idx}, KindLabels, 3},
		{"testdata/wordnet/../eval.jsonl", ValidateOptions{Kind: KindEval}, KindEval, 4},
	}
	for _, tc := range tests {
		res, err := Validate(ctx, tc.file, tc.opts)
		if err != nil || res.Kind != tc.kind || res.Records != tc.records {
			t.Errorf("%s: %+v, %v; want %s with %d records", tc.file, res, err, tc.kind, tc.records)
		}
	}
	if _, err := Validate(ctx, "testdata/eval.jsonl", ValidateOptions{Kind: KindLabels}); err == nil {
		t.Error("eval file validated as labels")
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestComputeStats(t *testing.T) {
	st, err := ComputeStats(context.Background(), "testdata/eval.jsonl", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	if st.Kind != KindEval || st.Records != 4 || st.Duplicates != 1 || st.DuplicateRate != 0.25 {
		t.Errorf("stats %+v", st)
	}
	if st.MasksPerItem["1"] != 3 || st.MasksPerItem["2"] != 1 || st.Words.Min != 3 || st.Words.Max != 4 {
		t.Errorf("masks %v words %+v", st.MasksPerItem, st.Words)
	}
	if len(st.TopAnswers) != 2 || st.TopAnswers[0] != (Count{Value: "dog", Count: 2}) {
		t.Errorf("top answers %v", st.TopAnswers)
	}
	st, err = ComputeStats(context.Background(), "testdata/pool_bad.jsonl", KindPool, 5)
	if err != nil || st.Records != 3 || st.Invalid != 4 {
		t.Errorf("pool stats %+v, %v", st, err)
	}
	st, err = ComputeStats(context.Background(), "testdata/labels.jsonl", "", 5)
	if err != nil || st.Status["answered"] != 1 || st.Status["skipped"] != 1 || st.Status["flagged"] != 1 {
		t.Errorf("label stats %+v, %v", st, err)
	}
}
