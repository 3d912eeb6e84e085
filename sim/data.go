package sim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/clozeloop/clozeloop/dataset"
)

// File names in a data folder, as written by "clozeloop data build".
const (
	PoolFile   = "pool.jsonl"
	OracleFile = "oracle.jsonl"
	EvalFile   = "eval.jsonl"
)

// Data is the input of a simulation.
type Data struct {
	// Pool holds the pool items in file order.
	Pool []Item
	// Gold maps every pool item's ID to its gold answers.
	Gold map[string][]string
	// Eval is the evaluation set.
	Eval []EvalItem
}

// LoadData reads pool.jsonl, oracle.jsonl and eval.jsonl from dir. Every
// pool item needs a gold answer with as many words as it has masks.
// evalLimit > 0 keeps the first evalLimit eval items.
func LoadData(ctx context.Context, dir string, evalLimit int) (*Data, error) {
	d := &Data{Gold: map[string][]string{}}
	err := readFile(filepath.Join(dir, OracleFile), func(f *os.File) error {
		r := dataset.NewEvalReader(f, OracleFile, dataset.Options{})
		for r.Next() {
			rec := r.Record()
			d.Gold[rec.ID] = rec.Gold
		}
		return r.Err()
	})
	if err != nil {
		return nil, err
	}
	err = readFile(filepath.Join(dir, PoolFile), func(f *os.File) error {
		r := dataset.NewItemReader(f, PoolFile, dataset.Options{})
		for r.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			rec := r.Record()
			g, ok := d.Gold[rec.ID]
			if !ok {
				return fmt.Errorf("%s:%d: item %q has no gold answer in %s", PoolFile, r.Line(), rec.ID, OracleFile)
			}
			if n := dataset.CountMasks(rec.Text); n != len(g) {
				return fmt.Errorf("%s:%d: item %q has %d masks but %d gold answers in %s", PoolFile, r.Line(), rec.ID, n, len(g), OracleFile)
			}
			d.Pool = append(d.Pool, Item{ID: rec.ID, Text: rec.Text})
		}
		return r.Err()
	})
	if err != nil {
		return nil, err
	}
	err = readFile(filepath.Join(dir, EvalFile), func(f *os.File) error {
		r := dataset.NewEvalReader(f, EvalFile, dataset.Options{})
		for (evalLimit <= 0 || len(d.Eval) < evalLimit) && r.Next() {
			rec := r.Record()
			d.Eval = append(d.Eval, EvalItem{ID: rec.ID, Text: rec.Text, Gold: rec.Gold})
		}
		return r.Err()
	})
	if err != nil {
		return nil, err
	}
	if len(d.Pool) == 0 {
		return nil, fmt.Errorf("load data %s: %s has no items", dir, PoolFile)
	}
	if len(d.Eval) == 0 {
		return nil, fmt.Errorf("load data %s: %s has no items", dir, EvalFile)
	}
	return d, nil
}

func readFile(path string, fn func(*os.File) error) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read %s: %w (build the data folder with 'clozeloop data build')", path, err)
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	if err := fn(f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
