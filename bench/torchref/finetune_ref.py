"""Independent PyTorch reference for clozeloop's fine-tuning steps.

Usage: python3 finetune_ref.py CHECKPOINT_DIR STEPS_JSON OUT_DIR

CHECKPOINT_DIR holds config.json and model.safetensors (the starting model: a
BERT, run by bert_ref.py, or a ModernBERT, run by family_ref.py).
STEPS_JSON describes the run:

    {"accum": 2, "max_grad_norm": 1.0, "beta1": 0.9, "beta2": 0.999,
     "eps": 1e-8, "weight_decay": 0.01, "lrs": [lr of step 1, ...],
     "micro": [[{"ids": [...], "pos": [...], "labels": [...]}, ...], ...]}

micro lists the micro-batches in order (accum of them per optimizer step);
each item is one sequence ([CLS] ... [SEP]) with the positions to predict
and their labels. Every step is what Hugging Face's Trainer does: the mean
cross-entropy over a micro-batch's predicted positions divided by accum,
backward, summed over accum micro-batches; torch.nn.utils.clip_grad_norm_;
torch.optim.AdamW with weight decay on every parameter but biases and
LayerNorm weights (ModernBERT's ...norm.weight); zero_grad. No dropout (the caller's config has none).

Writes OUT_DIR/steps.json ({"loss": [...], "grad_norm": [...]}, one value
per step: the step's loss, the mean over its micro-batches, and the global
gradient norm before clipping) and OUT_DIR/step-K.safetensors, the
parameters after step K (Hugging Face names), for every step.
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_ref  # noqa: E402
import family_ref  # noqa: E402


def no_decay(name):
    """Hugging Face Trainer's rule: no weight decay on biases and LayerNorm
    (ModernBERT's LayerNorms are the modules named ...norm)."""
    return name.endswith("bias") or "LayerNorm" in name or name.endswith("norm.weight")


def load_checkpoint(path):
    """(params, cfg) of a BERT (checked by bert_ref) or ModernBERT checkpoint."""
    with open(os.path.join(path, "config.json"), "r", encoding="utf-8") as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "modernbert":
        return bert_ref.load_checkpoint(path)
    raw = bert_ref.load_safetensors(os.path.join(path, "model.safetensors"))
    if "decoder.weight" in raw:
        raise SystemExit("expected a tied decoder (no decoder.weight)")
    return {k: v.float() for k, v in raw.items()}, cfg


def micro_loss(params, cfg, items):
    T = max(len(it["ids"]) for it in items)
    pad = cfg.get("pad_token_id", 0)
    ids = torch.full((len(items), T), pad, dtype=torch.long)
    mask = torch.zeros((len(items), T), dtype=torch.long)
    rows, cols, labels = [], [], []
    for b, it in enumerate(items):
        ids[b, :len(it["ids"])] = torch.tensor(it["ids"], dtype=torch.long)
        mask[b, :len(it["ids"])] = 1
        for p, l in zip(it["pos"], it["labels"]):
            rows.append(b)
            cols.append(p)
            labels.append(l)
    if cfg.get("model_type") == "modernbert":
        h = family_ref.modernbert_encode(params, cfg, ids, mask)
        logits = family_ref.modernbert_head(params, cfg, h[torch.tensor(rows), torch.tensor(cols)])
    else:
        h = bert_ref.encode(params, cfg, ids, mask)
        logits = bert_ref.mlm_head(params, cfg, h[torch.tensor(rows), torch.tensor(cols)])
    return F.cross_entropy(logits, torch.tensor(labels, dtype=torch.long))


def main():
    ckpt, spec_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_num_threads(1)
    with open(spec_path, "r", encoding="utf-8") as f:
        spec = json.load(f)
    params, cfg = load_checkpoint(ckpt)
    if "cls.predictions.decoder.weight" in params:
        raise SystemExit("expected a tied decoder (no cls.predictions.decoder.weight)")
    for t in params.values():
        t.requires_grad_(True)
    names = sorted(params)
    groups = [
        {"params": [params[n] for n in names if not no_decay(n)], "weight_decay": spec["weight_decay"]},
        {"params": [params[n] for n in names if no_decay(n)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=spec["lrs"][0], betas=(spec["beta1"], spec["beta2"]), eps=spec["eps"])
    accum = spec["accum"]
    micro = spec["micro"]
    losses, norms = [], []
    for step, lr in enumerate(spec["lrs"]):
        total = 0.0
        for a in range(accum):
            loss = micro_loss(params, cfg, micro[step * accum + a])
            (loss / accum).backward()
            total += loss.item() / accum
        norm = torch.nn.utils.clip_grad_norm_([params[n] for n in names], spec["max_grad_norm"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total)
        norms.append(float(norm))
        os.makedirs(out, exist_ok=True)
        bert_ref.save_safetensors(os.path.join(out, "step-%d.safetensors" % (step + 1)),
                                  {n: params[n] for n in names})
    with open(os.path.join(out, "steps.json"), "w", encoding="utf-8") as f:
        json.dump({"loss": losses, "grad_norm": norms}, f)


if __name__ == "__main__":
    main()
