#!/usr/bin/env python3
"""PyTorch eager speed reference for clozeloop's benchmarks.

Runs a BERT masked LM (bert_ref.py: plain torch, random weights, HF init) on
this machine and prints ONE JSON object per measurement on stdout.

Modes:
  score   batch B x length L, one mask per item; logits at every position (the
          Hugging Face fill-mask pipeline's way) or, with --mask-only, only at
          the mask; then softmax and top-5 at the mask. Reports items/s.
          With --lengths-file, the items have the lengths listed in the file
          (integers separated by commas or white space, [CLS] and [SEP]
          included) and are cut, in input order, into batches of B padded to
          the longest item of each batch, as the HF pipeline batches them; one
          timed run is a pass over all of them and the warm-up is the first
          batch.
  train   one fine-tuning step: forward (dropout on) + cross-entropy at the
          masks + backward + AdamW step. Reports tokens/s.
  matmul  GFLOP/s of torch.matmul for --shapes MxKxN[,MxKxN...].
  grid    the measurements listed in --spec FILE, a JSON object
          {"cells": [{"mode": "score"|"train", "batch": B, "length": L,
          "lengths": [...], "mask_only": bool}, ...]}, with one model (the
          config flags) and one thread count; prints one JSON line per cell,
          as the score and train modes print theirs. Weights are made once
          for all score cells, so a grid saves the interpreter and torch
          start-up of one process per cell.

Timing: --warmup untimed runs, then timed runs until at least --runs runs
and --min-seconds of timed runs are done, or --max-seconds have passed (at
least one run). The result is the median run.
Needs only Debian's python3-torch (1.13); no transformers.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_ref  # noqa: E402


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["score", "train", "matmul", "grid"])
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--intermediate", type=int, default=3072)
    ap.add_argument("--max-pos", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=32)
    ap.add_argument("--lengths-file", help="score: item lengths, in order (see the mode's help)")
    ap.add_argument("--spec", help="grid: JSON file listing the cells")
    ap.add_argument("--mask-only", action="store_true",
                    help="compute the MLM head only at the mask positions")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=0.0,
                    help="keep timing until the timed runs add up to this many seconds")
    ap.add_argument("--max-seconds", type=float, default=math.inf,
                    help="stop timing after this many seconds (after at least one run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--dropout", type=float, default=0.1, help="dropout in train mode")
    ap.add_argument("--shapes", default="1024x768x3072,1024x3072x768,2048x2048x2048",
                    help="matmul shapes MxKxN, comma separated")
    a = ap.parse_args(argv)
    for name in ("vocab", "hidden", "layers", "heads", "intermediate", "max_pos", "batch", "length",
                 "threads", "runs"):
        if getattr(a, name) <= 0:
            ap.error("--%s must be positive" % name.replace("_", "-"))
    if a.warmup < 0:
        ap.error("--warmup must be >= 0")
    if a.min_seconds < 0 or not a.max_seconds > 0:
        ap.error("--min-seconds must be >= 0 and --max-seconds positive")
    if a.hidden % a.heads:
        ap.error("--hidden %d is not a multiple of --heads %d" % (a.hidden, a.heads))
    a.lengths = None
    if a.lengths_file:
        if a.mode != "score":
            ap.error("--lengths-file is for score mode")
        try:
            with open(a.lengths_file) as f:
                a.lengths = [int(x) for x in f.read().replace(",", " ").split()]
        except (OSError, ValueError) as e:
            ap.error("--lengths-file %s: %s" % (a.lengths_file, e))
        if not a.lengths:
            ap.error("--lengths-file %s lists no lengths" % a.lengths_file)
    if a.mode == "grid" and not a.spec:
        ap.error("grid mode needs --spec FILE")
    if a.mode in ("score", "train"):
        err = check_cell(a.lengths, a.length, a.max_pos)
        if err:
            ap.error(err)
    return a


def check_cell(lengths, length, max_pos):
    """Returns an error message when the item lengths are unusable, else None."""
    for n in lengths if lengths is not None else [length]:
        if n < 3:
            return "length %d must be at least 3 ([CLS], a mask, [SEP])" % n
        if n > max_pos:
            return "length %d exceeds --max-pos %d" % (n, max_pos)
    return None


def timed(fn, a, warm=None):
    """Runs warm (default fn) a.warmup times, then times fn as the module
    docstring says; returns the run times in ms."""
    for _ in range(a.warmup):
        (warm or fn)()
    ms = []
    total = 0.0
    while True:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        ms.append(dt * 1000.0)
        total += dt
        if total >= a.max_seconds or (len(ms) >= a.runs and total >= a.min_seconds):
            return ms


def batch_inputs(cfg, lengths, g):
    """One padded batch for items of the given lengths: ids (pad 0), attention
    mask, token types and the mask position of each item."""
    V = cfg["vocab_size"]
    B, L = len(lengths), max(lengths)
    ids = torch.randint(1, V, (B, L), generator=g)
    am = torch.zeros(B, L, dtype=torch.long)
    mpos = torch.zeros(B, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, 0] = min(101, V - 1)  # [CLS]
        ids[i, n - 1] = min(102, V - 1)  # [SEP]
        ids[i, n:] = 0  # [PAD]
        am[i, :n] = 1
        mpos[i] = int(torch.randint(1, n - 1, (1,), generator=g))
    ids[torch.arange(B), mpos] = min(103, V - 1)  # [MASK]
    return ids, am, torch.zeros(B, L, dtype=torch.long), mpos


def forward_flops(cfg, B, L, head_rows):
    """Multiply-add FLOPs (2 per MAC) of the forward pass of B items padded to
    L tokens: the encoder, nl x (2 B L (4 H^2 + 2 H I) + 4 B L^2 H) (the four
    attention projections, the two feed-forward matrices, Q K^T and
    softmax(.) V), and the MLM head at head_rows positions,
    2 head_rows (H^2 + H V). Embeddings, LayerNorm, GELU and softmax are
    left out. mlm.ForwardFLOPs in Go is the same formula."""
    H, I, V, nl = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    tokens = B * L
    enc = nl * (2 * tokens * (4 * H * H + 2 * H * I) + 4 * B * L * L * H)
    head = 2 * head_rows * (H * H + H * V)
    return enc, head


class Cell:
    """One measurement: mode, batch, fixed length or item lengths, head."""

    def __init__(self, mode, batch, length, lengths, mask_only):
        self.mode, self.batch, self.length, self.lengths, self.mask_only = mode, batch, length, lengths, mask_only

    def batches(self):
        """The item lengths of each batch."""
        if self.lengths is None:
            return [[self.length] * self.batch]
        return [self.lengths[i:i + self.batch] for i in range(0, len(self.lengths), self.batch)]


def run_score(a, cfg, params, cell):
    g = torch.Generator().manual_seed(a.seed + 1)
    batches = [batch_inputs(cfg, lens, g) for lens in cell.batches()]
    out = {}

    def step(bs):
        with torch.inference_mode():
            for ids, am, tt, mpos in bs:
                idx = torch.arange(ids.shape[0])
                h = bert_ref.encode(params, cfg, ids, am, tt)
                if cell.mask_only:
                    logits = bert_ref.mlm_head(params, cfg, h[idx, mpos])
                else:
                    logits = bert_ref.mlm_head(params, cfg, h)[idx, mpos]
                probs = torch.softmax(logits, dim=-1)
                top = torch.topk(probs, min(5, cfg["vocab_size"]), dim=-1)
                out["top"] = top.values

    ms = timed(lambda: step(batches), a, warm=lambda: step(batches[:1]))
    enc = head = 0
    for ids, _, _, _ in batches:
        B, L = ids.shape
        e, h = forward_flops(cfg, B, L, B if cell.mask_only else B * L)
        enc, head = enc + e, head + h
    return ms, enc + head, {"encoder_gflop_per_batch": enc / 1e9}


def run_train(a, cfg, cell):
    g = torch.Generator().manual_seed(a.seed + 1)
    params = {k: v.requires_grad_(True) for k, v in bert_ref.init_params(cfg, seed=a.seed).items()}
    decay = [v for k, v in params.items() if not (k.endswith("bias") or "LayerNorm" in k)]
    no_decay = [v for k, v in params.items() if k.endswith("bias") or "LayerNorm" in k]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)
    ids, am, tt, mpos = batch_inputs(cfg, [cell.length] * cell.batch, g)
    targets = torch.randint(1, cfg["vocab_size"], (cell.batch,), generator=g)
    idx = torch.arange(cell.batch)
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        h = bert_ref.encode(params, cfg, ids, am, tt, dropout=a.dropout, training=True)
        if cell.mask_only:
            logits = bert_ref.mlm_head(params, cfg, h[idx, mpos])
        else:
            # HF BertForMaskedLM: logits at every position, labels -100 except at masks.
            logits = bert_ref.mlm_head(params, cfg, h)[idx, mpos]
        loss = F.cross_entropy(logits, targets)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))

    ms = timed(step, a)
    B, L = cell.batch, cell.length
    enc, head = forward_flops(cfg, B, L, B if cell.mask_only else B * L)
    # backward is about twice the forward
    return ms, 3 * (enc + head), {"loss_first": losses[0], "loss_last": losses[-1]}


def run_matmul(a):
    results = []
    for spec in a.shapes.split(","):
        try:
            m, k, n = (int(x) for x in spec.lower().split("x"))
        except ValueError:
            raise SystemExit("bad --shapes entry %r (want MxKxN)" % spec)
        if min(m, k, n) <= 0:
            raise SystemExit("bad --shapes entry %r (dimensions must be positive)" % spec)
        x = torch.randn(m, k)
        y = torch.randn(k, n)
        ms = timed(lambda: torch.matmul(x, y), a)
        med = statistics.median(ms)
        results.append({"m": m, "k": k, "n": n, "ms": med, "ms_runs": ms,
                        "gflop_per_s": 2.0 * m * k * n / (med / 1000.0) / 1e9})
    return results


def read_spec(a):
    """Reads and checks the grid's cells."""
    try:
        with open(a.spec) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit("--spec %s: %s" % (a.spec, e))
    cells = spec.get("cells") if isinstance(spec, dict) else None
    if not cells:
        raise SystemExit("--spec %s lists no cells" % a.spec)
    out = []
    for i, c in enumerate(cells):
        mode, batch = c.get("mode", "score"), c.get("batch", 0)
        length, lengths = c.get("length", 0), c.get("lengths")
        if mode not in ("score", "train") or not isinstance(batch, int) or batch <= 0:
            raise SystemExit("--spec cell %d: want mode score or train and a positive batch, got %r" % (i, c))
        if lengths is not None and (mode != "score" or not lengths or not all(isinstance(n, int) for n in lengths)):
            raise SystemExit("--spec cell %d: lengths must be a non-empty list of integers, score mode only" % i)
        if lengths is None and not isinstance(length, int):
            raise SystemExit("--spec cell %d: length must be an integer" % i)
        err = check_cell(lengths, length, a.max_pos)
        if err:
            raise SystemExit("--spec cell %d: %s" % (i, err))
        out.append(Cell(mode, batch, length, lengths, bool(c.get("mask_only", False))))
    return out


def measure(a, cfg, cell, score_params):
    """Runs one cell and returns its result object."""
    if cell.mode == "score":
        ms, flops, extra = run_score(a, cfg, score_params(), cell)
    else:
        ms, flops, extra = run_train(a, cfg, cell)
    med = statistics.median(ms)
    items = cell.batch if cell.lengths is None else len(cell.lengths)
    tokens = cell.batch * cell.length if cell.lengths is None else sum(cell.lengths)
    res = {
        "mode": cell.mode, "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "warmup": a.warmup, "runs": len(ms),
        "config": {k: cfg[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                        "num_attention_heads", "intermediate_size",
                                        "max_position_embeddings")},
        "batch": cell.batch, "mask_only": cell.mask_only,
        "length": cell.length if cell.lengths is None else max(cell.lengths),
        "items": items, "tokens": tokens,
        "ms_per_batch": med, "ms_runs": ms,
        "items_per_s": items / (med / 1000.0),
        "tokens_per_s": tokens / (med / 1000.0),
        "gflop_per_batch": flops / 1e9,
        "gflop_per_s": flops / 1e9 / (med / 1000.0),
    }
    if cell.lengths is not None:
        res["lengths"] = cell.lengths
    res.update(extra)
    return res


def main(argv):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.mode == "matmul":
        res = {"mode": a.mode, "torch_version": torch.__version__, "threads": torch.get_num_threads(),
               "warmup": a.warmup, "runs": a.runs, "matmul": run_matmul(a)}
        json.dump(res, sys.stdout)
        sys.stdout.write("\n")
        return 0
    cfg = bert_ref.make_config(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                               num_attention_heads=a.heads, intermediate_size=a.intermediate,
                               max_position_embeddings=a.max_pos)
    if a.mode == "grid":
        cells = read_spec(a)
    else:
        cells = [Cell(a.mode, a.batch, a.length, a.lengths, a.mask_only)]
    cache = {}

    def score_params():
        if "p" not in cache:
            cache["p"] = bert_ref.init_params(cfg, seed=a.seed)
        return cache["p"]

    for cell in cells:
        json.dump(measure(a, cfg, cell, score_params), sys.stdout)
        sys.stdout.write("\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
