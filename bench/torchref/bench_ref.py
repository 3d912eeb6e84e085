#!/usr/bin/env python3
"""PyTorch eager speed reference for clozeloop's benchmarks.

Runs a BERT masked LM (bert_ref.py: plain torch, random weights, HF init) on
this machine and prints ONE JSON object on stdout.

Modes:
  score   batch B x length L, one mask per item; logits at every position (the
          Hugging Face fill-mask pipeline's way) or, with --mask-only, only at
          the mask; then softmax and top-5 at the mask. Reports items/s.
  train   one fine-tuning step: forward (dropout on) + cross-entropy at the
          masks + backward + AdamW step. Reports tokens/s.
  matmul  GFLOP/s of torch.matmul for --shapes MxKxN[,MxKxN...].

Each timing is the median of --runs after --warmup untimed runs.
Needs only Debian's python3-torch (1.13); no transformers.
"""

import argparse
import json
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
    ap.add_argument("mode", choices=["score", "train", "matmul"])
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--intermediate", type=int, default=3072)
    ap.add_argument("--max-pos", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=32)
    ap.add_argument("--mask-only", action="store_true",
                    help="compute the MLM head only at the mask positions")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
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
    if a.length < 3:
        ap.error("--length must be at least 3 ([CLS], a mask, [SEP])")
    if a.length > a.max_pos:
        ap.error("--length %d exceeds --max-pos %d" % (a.length, a.max_pos))
    if a.hidden % a.heads:
        ap.error("--hidden %d is not a multiple of --heads %d" % (a.hidden, a.heads))
    return a


def timed(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000.0)
    return ms


def batch_inputs(cfg, B, L, g):
    V = cfg["vocab_size"]
    ids = torch.randint(1, V, (B, L), generator=g)
    ids[:, 0] = min(101, V - 1)  # [CLS]
    ids[:, -1] = min(102, V - 1)  # [SEP]
    mpos = torch.randint(1, L - 1, (B,), generator=g)
    ids[torch.arange(B), mpos] = min(103, V - 1)  # [MASK]
    return ids, torch.ones(B, L, dtype=torch.long), torch.zeros(B, L, dtype=torch.long), mpos


def forward_flops(cfg, B, L, head_rows):
    """Multiply-add FLOPs (2 per MAC) of the forward pass."""
    H, I, V, nl = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    tokens = B * L
    enc = nl * (2 * tokens * (4 * H * H + 2 * H * I) + 4 * B * L * L * H)
    head = 2 * head_rows * (H * H + H * V)
    return enc, head


def run_score(a, cfg):
    g = torch.Generator().manual_seed(a.seed + 1)
    params = bert_ref.init_params(cfg, seed=a.seed)
    ids, am, tt, mpos = batch_inputs(cfg, a.batch, a.length, g)
    idx = torch.arange(a.batch)
    out = {}

    def step():
        with torch.inference_mode():
            h = bert_ref.encode(params, cfg, ids, am, tt)
            if a.mask_only:
                logits = bert_ref.mlm_head(params, cfg, h[idx, mpos])
            else:
                logits = bert_ref.mlm_head(params, cfg, h)[idx, mpos]
            probs = torch.softmax(logits, dim=-1)
            top = torch.topk(probs, min(5, cfg["vocab_size"]), dim=-1)
            out["top"] = top.values

    ms = timed(step, a.warmup, a.runs)
    enc, head = forward_flops(cfg, a.batch, a.length, a.batch if a.mask_only else a.batch * a.length)
    return ms, enc + head, {"encoder_gflop_per_batch": enc / 1e9}


def run_train(a, cfg):
    g = torch.Generator().manual_seed(a.seed + 1)
    params = {k: v.requires_grad_(True) for k, v in bert_ref.init_params(cfg, seed=a.seed).items()}
    decay = [v for k, v in params.items() if not (k.endswith("bias") or "LayerNorm" in k)]
    no_decay = [v for k, v in params.items() if k.endswith("bias") or "LayerNorm" in k]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)
    ids, am, tt, mpos = batch_inputs(cfg, a.batch, a.length, g)
    targets = torch.randint(1, cfg["vocab_size"], (a.batch,), generator=g)
    idx = torch.arange(a.batch)
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        h = bert_ref.encode(params, cfg, ids, am, tt, dropout=a.dropout, training=True)
        if a.mask_only:
            logits = bert_ref.mlm_head(params, cfg, h[idx, mpos])
        else:
            # HF BertForMaskedLM: logits at every position, labels -100 except at masks.
            logits = bert_ref.mlm_head(params, cfg, h)[idx, mpos]
        loss = F.cross_entropy(logits, targets)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))

    ms = timed(step, a.warmup, a.runs)
    enc, head = forward_flops(cfg, a.batch, a.length, a.batch if a.mask_only else a.batch * a.length)
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
        ms = timed(lambda: torch.matmul(x, y), a.warmup, a.runs)
        med = statistics.median(ms)
        results.append({"m": m, "k": k, "n": n, "ms": med, "ms_runs": ms,
                        "gflop_per_s": 2.0 * m * k * n / (med / 1000.0) / 1e9})
    return results


def main(argv):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    res = {"mode": a.mode, "torch_version": torch.__version__, "threads": torch.get_num_threads(),
           "warmup": a.warmup, "runs": a.runs}
    if a.mode == "matmul":
        res["matmul"] = run_matmul(a)
    else:
        cfg = bert_ref.make_config(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                                   num_attention_heads=a.heads, intermediate_size=a.intermediate,
                                   max_position_embeddings=a.max_pos)
        runner = run_score if a.mode == "score" else run_train
        ms, flops, extra = runner(a, cfg)
        med = statistics.median(ms)
        res.update({
            "config": {k: cfg[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                            "num_attention_heads", "intermediate_size",
                                            "max_position_embeddings")},
            "batch": a.batch, "length": a.length, "mask_only": a.mask_only,
            "ms_per_batch": med, "ms_runs": ms,
            "items_per_s": a.batch / (med / 1000.0),
            "tokens_per_s": a.batch * a.length / (med / 1000.0),
            "gflop_per_batch": flops / 1e9,
            "gflop_per_s": flops / 1e9 / (med / 1000.0),
        })
        res.update(extra)
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
