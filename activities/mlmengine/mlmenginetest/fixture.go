// Package mlmenginetest builds test fixtures for the model engine: an
// embedded S3 server with a store, a tiny untrained BERT with a WordPiece
// vocabulary trained on a small generated corpus, and a cloze pool and
// evaluation set, all uploaded. Tests of mlmengine and the integration
// tests of devserver use it.
package mlmenginetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clozeloop/clozeloop/dataset"
	"github.com/clozeloop/clozeloop/mlm"
	"github.com/clozeloop/clozeloop/store"
	"github.com/clozeloop/clozeloop/store/s3embed"
	"github.com/clozeloop/clozeloop/tokenize"
)

// Keys of the uploaded fixture objects.
const (
	ModelURI = "models/tiny-start"
	PoolURI  = "datasets/tiny/pool.jsonl"
	EvalURI  = "datasets/tiny/eval.jsonl"
)

// Fixture is an embedded S3 server holding a tiny model, a pool and an
// evaluation set.
type Fixture struct {
	Server *s3embed.Server
	Store  *store.Store
	// Config opens Store again (e.g. from another component).
	Config store.Config
	// Gold is the answer of every pool item, by id.
	Gold map[string]string
	// PoolItems is the pool, in file order.
	PoolItems []dataset.Item
}

var (
	subjects = []string{"the cat", "the dog", "a bird", "my friend", "the teacher", "a child", "the farmer", "our neighbour"}
	verbs    = []string{"sees", "likes", "finds", "paints", "reads", "wants", "carries", "watches"}
	objects  = []string{"the red book", "a blue ball", "the old map", "a small boat", "the green apple", "a warm coat", "the long road", "a bright lamp"}
	places   = []string{"in the garden", "at the market", "near the river", "on the hill", "by the sea", "in the kitchen"}
)

// Sentences returns n generated sentences (deterministic).
func Sentences(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %s %s %s .", subjects[i%len(subjects)], verbs[(i/3)%len(verbs)],
			objects[(i/7)%len(objects)], places[(i/5)%len(places)])
	}
	return out
}

// clozeOf masks the verb of sentence i.
func clozeOf(i int, s string) (text, gold string) {
	gold = verbs[(i/3)%len(verbs)]
	return strings.Replace(s, " "+gold+" ", " "+dataset.MaskToken+" ", 1), gold
}

// Start starts the embedded S3 server in a temporary folder, trains the
// tokenizer, saves and uploads an untrained tiny model (2 layers, hidden
// 32), and uploads a pool of poolSize items and an evaluation set of
// evalSize items. The server stops when the test ends.
func Start(t testing.TB, poolSize, evalSize int) *Fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := s3embed.Start(ctx, "127.0.0.1:0", filepath.Join(dir, "s3"), s3embed.WithLogger(log))
	if err != nil {
		t.Fatalf("start embedded S3: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cfg := store.Config{Endpoint: srv.Endpoint(), Bucket: srv.Bucket(), Region: s3embed.Region, PathStyle: true,
		AccessKeyID: srv.Credentials().AccessKeyID, SecretAccessKey: srv.Credentials().SecretAccessKey}
	st, err := store.Open(ctx, cfg, log)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	f := &Fixture{Server: srv, Store: st, Config: cfg, Gold: map[string]string{}}

	corpus := Sentences(300)
	tok, err := tokenize.TrainWordPiece(ctx, lines(corpus), tokenize.TrainOptions{VocabSize: 200, Lowercase: true})
	if err != nil {
		t.Fatalf("train tokenizer: %v", err)
	}
	c := mlm.TinyConfig(tok.VocabSize())
	c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings = 32, 2, 64, 32
	m, err := mlm.New(c, tok, mlm.Options{Device: "cpu", Threads: 1, Seed: 7})
	if err != nil {
		t.Fatalf("new tiny model: %v", err)
	}
	modelDir := filepath.Join(dir, "model")
	err = m.Save(ctx, modelDir)
	m.Close()
	if err != nil {
		t.Fatalf("save tiny model: %v", err)
	}
	if _, _, err := st.UploadDir(ctx, modelDir, ModelURI); err != nil {
		t.Fatalf("upload tiny model: %v", err)
	}

	var pool, eval bytes.Buffer
	penc, eenc := json.NewEncoder(&pool), json.NewEncoder(&eval)
	for i := 0; i < poolSize; i++ {
		text, gold := clozeOf(i, corpus[i%len(corpus)])
		it := dataset.Item{ID: fmt.Sprintf("p%04d", i), Text: text}
		f.Gold[it.ID], f.PoolItems = gold, append(f.PoolItems, it)
		if err := penc.Encode(it); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < evalSize; i++ {
		j := len(corpus) - 1 - i
		text, gold := clozeOf(j, corpus[j])
		if err := eenc.Encode(dataset.EvalItem{ID: fmt.Sprintf("e%04d", i), Text: text, Gold: []string{gold}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PutBytes(ctx, PoolURI, pool.Bytes()); err != nil {
		t.Fatalf("upload pool: %v", err)
	}
	if _, err := st.PutBytes(ctx, EvalURI, eval.Bytes()); err != nil {
		t.Fatalf("upload eval set: %v", err)
	}
	return f
}

func lines(s []string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for _, l := range s {
			if !yield(l, nil) {
				return
			}
		}
	}
}
