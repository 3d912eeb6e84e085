package dataset

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestReaderBadLines(t *testing.T) {
	counts := func(id string) (int, bool) {
		switch id {
		case "one":
			return 1, true
		case "two":
			return 2, true
		}
		return 0, false
	}
	const ts = `"time":"2024-05-01T10:00:00Z"`
	tests := []struct {
		name   string
		kind   Kind
		input  string
		line   int
		reason Reason
	}{
		{"no mask", KindPool, `{"id":"a","text":"the cat sat"}`, 1, ReasonNoMask},
		{"empty text", KindPool, "{\"id\":\"a\",\"text\":\"x [MASK]\"}\n{\"id\":\"b\",\"text\":\"  \"}", 2, ReasonEmptyText},
		{"missing text", KindPool, `{"id":"a"}`, 1, ReasonEmptyText},
		{"invalid utf8", KindPool, "\n\n{\"text\":\"caf\xff [MASK]\"}", 3, ReasonInvalidUTF8},
		{"unknown field", KindPool, `{"text":"a [MASK]","colour":"red"}`, 1, ReasonUnknownField},
		{"malformed", KindPool, `{"text":"a [MASK]"`, 1, ReasonBadJSON},
		{"byte order mark on line 2", KindPool, "\ufeff{\"text\":\"a [MASK]\"}\n\ufeff{\"text\":\"b [MASK]\"}", 2, ReasonBadJSON},
		{"two values", KindPool, `{"text":"a [MASK]"} {}`, 1, ReasonBadJSON},
		{"wrong type", KindPool, `{"text":5}`, 1, ReasonBadValue},
		{"meta not object", KindPool, `{"text":"a [MASK]","meta":[1]}`, 1, ReasonBadValue},
		{"duplicate id", KindPool, "{\"id\":\"x\",\"text\":\"a [MASK]\"}\n{\"id\":\"y\",\"text\":\"b [MASK]\"}\n{\"id\":\"x\",\"text\":\"c [MASK]\"}", 3, ReasonDuplicateID},
		{"duplicate content id", KindPool, "{\"text\":\"A  [MASK].\"}\n{\"text\":\"a [MASK]\"}", 2, ReasonDuplicateID},
		{"line too long", KindPool, `{"text":"` + strings.Repeat("a", MaxLineBytes) + ` [MASK]"}`, 1, ReasonLineTooLong},
		{"eval gold count", KindEval, `{"text":"a [MASK] b [MASK]","gold":["x"]}`, 1, ReasonAnswerCount},
		{"eval empty gold", KindEval, `{"text":"a [MASK]","gold":[" "]}`, 1, ReasonEmptyAnswer},
		{"eval no mask", KindEval, `{"text":"a b","gold":[]}`, 1, ReasonNoMask},
		{"eval unknown field", KindEval, `{"text":"a [MASK]","answer":["x"]}`, 1, ReasonUnknownField},
		{"eval duplicate", KindEval, "{\"id\":\"e\",\"text\":\"a [MASK]\",\"gold\":[\"x\"]}\n{\"id\":\"e\",\"text\":\"b [MASK]\",\"gold\":[\"y\"]}", 2, ReasonDuplicateID},
		{"label bad status", KindLabels, `{"item_id":"one","answers":["x"],"annotator":"ann","round":1,` + ts + `,"status":"done"}`, 1, ReasonBadStatus},
		{"label answer count", KindLabels, `{"item_id":"two","answers":["x"],"annotator":"ann","round":1,` + ts + `,"status":"answered"}`, 1, ReasonAnswerCount},
		{"label answered without answers", KindLabels, `{"item_id":"one","answers":[],"annotator":"ann","round":1,` + ts + `,"status":"answered"}`, 1, ReasonAnswerCount},
		{"label skipped with answers", KindLabels, `{"item_id":"one","answers":["x"],"annotator":"ann","round":1,` + ts + `,"status":"skipped"}`, 1, ReasonAnswerCount},
		{"label unknown item", KindLabels, `{"item_id":"three","answers":["x"],"annotator":"ann","round":1,` + ts + `,"status":"answered"}`, 1, ReasonUnknownItem},
		{"label missing item", KindLabels, `{"answers":["x"],"annotator":"ann","round":1,` + ts + `,"status":"answered"}`, 1, ReasonMissingItemID},
		{"label missing annotator", KindLabels, `{"item_id":"one","answers":["x"],"round":1,` + ts + `,"status":"answered"}`, 1, ReasonMissingField},
		{"label missing time", KindLabels, `{"item_id":"one","answers":["x"],"annotator":"a","round":1,"status":"answered"}`, 1, ReasonMissingField},
		{"label bad time", KindLabels, `{"item_id":"one","answers":["x"],"annotator":"a","round":1,"time":"yesterday","status":"answered"}`, 1, ReasonBadValue},
		{"label unknown field", KindLabels, `{"item_id":"one","answers":["x"],"annotator":"a","round":1,` + ts + `,"status":"answered","score":1}`, 1, ReasonUnknownField},
		{"label duplicate", KindLabels, `{"item_id":"one","answers":["x"],"annotator":"a","round":1,` + ts + `,"status":"answered"}` + "\n" + `{"item_id":"one","answers":["y"],"annotator":"a","round":1,` + ts + `,"status":"answered"}`, 2, ReasonDuplicateID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := readAll(tc.kind, strings.NewReader(tc.input), Options{MaskCounts: counts})
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("got error %v, want a *LineError", err)
			}
			if le.File != "in.jsonl" || le.Line != tc.line || !le.Has(tc.reason) {
				t.Fatalf("got %v (file %q line %d), want in.jsonl line %d with %q", le, le.File, le.Line, tc.line, tc.reason)
			}
			if !strings.HasPrefix(le.Error(), fmt.Sprintf("in.jsonl:%d: ", tc.line)) {
				t.Errorf("message %q lacks file:line", le.Error())
			}
		})
	}
}

// readAll reads every record of the given kind and returns the reader's error.
func readAll(kind Kind, r io.Reader, opts Options) error {
	switch kind {
	case KindPool:
		rd := NewItemReader(r, "in.jsonl", opts)
		for rd.Next() {
		}
		return rd.Err()
	case KindEval:
		rd := NewEvalReader(r, "in.jsonl", opts)
		for rd.Next() {
		}
		return rd.Err()
	default:
		rd := NewLabelReader(r, "in.jsonl", opts)
		for rd.Next() {
		}
		return rd.Err()
	}
}

func TestReaderValidRecords(t *testing.T) {
	in := "{\"text\":\"  The  [MASK] sat. \",\"meta\":{\"k\":1}}\r\n\n{\"id\":\"given\",\"text\":\"[MASK] and [MASK]\"}"
	rd := NewItemReader(strings.NewReader(in), "p.jsonl", Options{})
	var got []Item
	for rd.Next() {
		got = append(got, rd.Record())
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2", len(got))
	}
	if got[0].Text != "The [MASK] sat." || got[0].ID != ContentID("the [MASK] sat") || string(got[0].Meta) != `{"k":1}` {
		t.Errorf("first record %+v", got[0])
	}
	if got[1].ID != "given" || CountMasks(got[1].Text) != 2 {
		t.Errorf("second record %+v", got[1])
	}
}

func TestReaderSkipInvalid(t *testing.T) {
	in := strings.Join([]string{
		`{"text":"a [MASK]"}`,
		`{"text":"no mask"}`,
		`{"text":"b [MASK]","x":1}`,
		`{"text":"c [MASK]"}`,
		`{"text":"a [MASK]"}`,
	}, "\n")
	rd := NewItemReader(strings.NewReader(in), "p.jsonl", Options{SkipInvalid: true})
	n := 0
	for rd.Next() {
		n++
	}
	if rd.Err() != nil || n != 2 || rd.Skipped() != 3 {
		t.Fatalf("records %d skipped %d err %v, want 2, 3, nil", n, rd.Skipped(), rd.Err())
	}
	var lines []int
	for _, le := range rd.Invalid() {
		lines = append(lines, le.Line)
	}
	if fmt.Sprint(lines) != "[2 3 5]" {
		t.Errorf("invalid lines %v, want [2 3 5]", lines)
	}
}

// poolGen generates a JSONL pool of n distinct items on the fly.
type poolGen struct {
	n, i int
	buf  []byte
}

func (g *poolGen) Read(p []byte) (int, error) {
	for len(g.buf) < len(p) && g.i < g.n {
		g.buf = fmt.Appendf(g.buf, `{"id":"item-%d","text":"sentence number %d has a [MASK] in it","meta":{"n":%d}}`+"\n", g.i, g.i, g.i)
		g.i++
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.buf)
	g.buf = g.buf[:copy(g.buf, g.buf[n:])]
	return n, nil
}

// heapAfter reads n generated items and returns the live heap while the
// reader (and its duplicate set) is still reachable.
func heapAfter(t testing.TB, n int, opts Options) (uint64, int) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rd := NewItemReader(&poolGen{n: n}, "gen.jsonl", opts)
	count := 0
	for rd.Next() {
		count++
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(rd)
	if after.HeapAlloc < before.HeapAlloc {
		return 0, count
	}
	return after.HeapAlloc - before.HeapAlloc, count
}

// TestReaderMemoryIsFlat reads a generated pool (100k lines; the 1M-line
// run is BenchmarkReadPool1M): without the duplicate set the live heap
// stays under 1 MiB; with it, under 32 bytes per id (an 8-byte hash in an
// open-addressing set), far below the ~75 bytes per input line.
func TestReaderMemoryIsFlat(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 50_000
	}
	heap, count := heapAfter(t, n, Options{NoDuplicateCheck: true})
	if count != n {
		t.Fatalf("read %d records, want %d", count, n)
	}
	t.Logf("no duplicate check: %d lines, live heap %d bytes", n, heap)
	if heap > 1<<20 {
		t.Errorf("live heap %d bytes after %d lines without duplicate check, want < 1 MiB", heap, n)
	}
	heap, _ = heapAfter(t, n, Options{})
	t.Logf("with duplicate check: %d lines, live heap %d bytes (%.1f bytes/id)", n, heap, float64(heap)/float64(n))
	if heap > uint64(32*n) {
		t.Errorf("live heap %d bytes for %d ids, want < 32 bytes/id", heap, n)
	}
}

func BenchmarkItemReader(b *testing.B) {
	for _, dup := range []bool{false, true} {
		b.Run(fmt.Sprintf("dupcheck=%v", dup), func(b *testing.B) {
			b.ReportAllocs()
			rd := NewItemReader(&poolGen{n: b.N}, "gen.jsonl", Options{NoDuplicateCheck: !dup})
			b.ResetTimer()
			for rd.Next() {
			}
			if err := rd.Err(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkReadPool1M streams a generated 1M-line pool (never on disk) and
// reports the live heap left by the reader with and without its duplicate
// set, and allocations per line.
func BenchmarkReadPool1M(b *testing.B) {
	const n = 1_000_000
	for _, dup := range []bool{false, true} {
		b.Run(fmt.Sprintf("dupcheck=%v", dup), func(b *testing.B) {
			b.ReportAllocs()
			var heap uint64
			for range b.N {
				heap, _ = heapAfter(b, n, Options{NoDuplicateCheck: !dup})
			}
			b.ReportMetric(float64(heap), "live-heap-bytes")
			b.ReportMetric(float64(heap)/n, "live-heap-bytes/line")
		})
	}
}

// TestReaderByteOrderMark: a UTF-8 byte order mark opening a file (as
// Windows editors write it) is not part of line 1; one further down gets a
// message that names it.
func TestReaderByteOrderMark(t *testing.T) {
	pool := NewItemReader(strings.NewReader("\ufeff{\"id\":\"a\",\"text\":\"the [MASK] sat\"}\n{\"id\":\"b\",\"text\":\"a [MASK]\"}\n"), "pool.jsonl", Options{})
	var ids []string
	for pool.Next() {
		ids = append(ids, pool.Record().ID)
	}
	if err := pool.Err(); err != nil || strings.Join(ids, ",") != "a,b" {
		t.Fatalf("pool with a BOM: %v, %v", ids, err)
	}
	eval := NewEvalReader(strings.NewReader("\ufeff{\"text\":\"a [MASK]\",\"gold\":[\"x\"]}"), "eval.jsonl", Options{})
	if !eval.Next() || eval.Err() != nil {
		t.Fatalf("eval set with a BOM: %v", eval.Err())
	}
	bad := NewItemReader(strings.NewReader("{\"text\":\"a [MASK]\"}\n\ufeff{\"text\":\"b [MASK]\"}"), "joined.jsonl", Options{})
	for bad.Next() {
	}
	if err := bad.Err(); err == nil || !strings.Contains(err.Error(), "joined.jsonl:2:") || !strings.Contains(err.Error(), "byte order mark") {
		t.Fatalf("BOM on line 2: %v, want a message naming it", err)
	}
}
