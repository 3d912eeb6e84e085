package mlm

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch/ts"

	"github.com/clozeloop/clozeloop/tokenize"
)

// TestFastPathTiming times the forward pass (embeddings, encoder, head at
// one position) on the fast and the reference path, interleaved in rounds
// so that a changing machine load affects both alike. It runs only with
// CLOZELOOP_FASTPATH_TIMING set to batch,length[,size[,threads[,score]]]: e.g.
// 1,16 for the bench's small shape (4 layers, hidden 256, vocabulary 8000)
// on one thread, 32,32,base,2 for bert-base on two; "score" times Score
// (on items of the test vocabulary) instead of forward and head alone.
func TestFastPathTiming(t *testing.T) {
	spec := os.Getenv("CLOZELOOP_FASTPATH_TIMING")
	if spec == "" {
		t.Skip("set CLOZELOOP_FASTPATH_TIMING=batch,length[,base] to time the fast path")
	}
	f := strings.Split(spec, ",")
	if len(f) < 2 {
		t.Fatalf("CLOZELOOP_FASTPATH_TIMING=%q: want batch,length[,base]", spec)
	}
	B, err1 := strconv.Atoi(f[0])
	T, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || B < 1 || T < 2 {
		t.Fatalf("CLOZELOOP_FASTPATH_TIMING=%q: want batch,length[,base]", spec)
	}
	base := len(f) > 2 && f[2] == "base"
	cfg := TinyConfig(8000)
	cfg.NumHiddenLayers, cfg.HiddenSize, cfg.NumAttentionHeads, cfg.IntermediateSize, cfg.MaxPositionEmbeddings = 4, 256, 4, 1024, 128
	if base {
		cfg = BERTBaseConfig()
	}
	threads := 1
	if len(f) > 3 {
		threads, _ = strconv.Atoi(f[3])
	}
	viaScore := len(f) > 4 && f[4] == "score"
	var tok *tokenize.Tokenizer
	if viaScore {
		tok = testTokenizer(t)
	}
	m, err := New(cfg, tok, Options{Device: "cpu", Threads: threads, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g := ts.NewNoGradGuard()
	defer g.Drop()
	rows := make([][]int64, B)
	for b := range rows {
		rows[b] = make([]int64, T)
		for p := range rows[b] {
			rows[b][p] = int64(5 + (b*31+p*7)%7000)
		}
	}
	ids := int64Batch(t, m, rows)
	defer ids.MustDrop()
	pos := make([]int64, B)
	for b := range pos {
		pos[b] = int64(b*T + T/2)
	}
	flat, err := m.int64Tensor(pos, []int64{int64(B)})
	if err != nil {
		t.Fatal(err)
	}
	defer flat.MustDrop()
	words := []string{"the", "cat", "sat", "on", "a", "mat", "and", "dog", "is", "red", "blue", "book"}
	items := make([]ScoreItem, B)
	for b := range items {
		var text []string
		for p := 0; p < T-3; p++ {
			text = append(text, words[(b+p)%len(words)])
		}
		items[b] = ScoreItem{ID: strconv.Itoa(b), Text: strings.Join(text, " ") + " [MASK]"}
	}
	once := func() {
		if viaScore {
			if _, err := m.Score(context.Background(), items, ScoreOptions{BatchSize: B}, nil); err != nil {
				t.Fatal(err)
			}
			return
		}
		var s scope
		defer s.free()
		var err error
		func() {
			defer catch(&err, "forward")
			h := m.forward(&s, ct(ids), nil, nil, false)
			at := s.consume(h, s.gather(h, ct(flat)))
			s.drop(m.head(&s, at))
		}()
		if err != nil {
			t.Fatal(err)
		}
	}
	iters := max(1, 50/B)
	var fast, ref []float64
	rounds := 20
	if base {
		rounds = 6
	}
	for range rounds {
		for _, off := range []bool{false, true} {
			m.fastOff = off
			once()
			start := time.Now()
			for range iters {
				once()
			}
			per := float64(time.Since(start).Microseconds()) / float64(iters)
			if off {
				ref = append(ref, per)
			} else {
				fast = append(fast, per)
			}
		}
	}
	slices.Sort(fast)
	slices.Sort(ref)
	t.Logf("batch %d × %d, %d layers, hidden %d: µs per forward+head, median (min): fast %.0f (%.0f), reference %.0f (%.0f); reference/fast %.2fx",
		B, T, cfg.NumHiddenLayers, cfg.HiddenSize, fast[len(fast)/2], fast[0], ref[len(ref)/2], ref[0], ref[len(ref)/2]/fast[len(fast)/2])
}
