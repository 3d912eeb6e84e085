#!/usr/bin/env python3
"""Standalone check of bert_ref.py (Debian python3-torch, no transformers).

Writes tiny random BertForMaskedLM checkpoints by hand (config.json +
model.safetensors via bert_ref.save_safetensors), loads them back with
bert_ref, and checks:
  - every tensor round-trips exactly (F32), and F16/BF16 files load as the
    rounded values; legacy names (LayerNorm.gamma/beta, pooler, NSP head,
    explicit decoder weight) are handled;
  - the logits equal an independent implementation built from
    torch.nn.TransformerEncoderLayer + nn.Linear/nn.LayerNorm modules
    (max abs diff <= 1e-5) at every non-padded position;
  - padding does not change the logits of real tokens;
  - mask-only logits equal the every-position logits at the masks;
  - a missing tensor, a wrong shape and a truncated file raise CheckpointError
    naming the problem.
Prints one JSON line and exits 0 when everything passes, 1 otherwise.
"""

import json
import os
import sys
import tempfile

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_ref  # noqa: E402

TOL = 1e-5
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def tiny_params(cfg, seed):
    """Random parameters with non-trivial LayerNorm and biases (std 0.3)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in bert_ref.param_shapes(cfg).items():
        t = torch.empty(shape).normal_(0.0, 0.3, generator=g)
        if "LayerNorm.weight" in name:
            t = 1.0 + t
        out[name] = t
    return out


def write_ckpt(d, cfg, tensors):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    bert_ref.save_safetensors(os.path.join(d, "model.safetensors"), tensors)


def independent_logits(params, cfg, ids, am, tt):
    """The same model from torch.nn modules, sharing no code with bert_ref.encode."""
    H, nh, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    word = nn.Embedding.from_pretrained(params["bert.embeddings.word_embeddings.weight"])
    posn = nn.Embedding.from_pretrained(params["bert.embeddings.position_embeddings.weight"])
    typ = nn.Embedding.from_pretrained(params["bert.embeddings.token_type_embeddings.weight"])
    ln = nn.LayerNorm(H, eps=eps)
    ln.weight.data.copy_(params["bert.embeddings.LayerNorm.weight"])
    ln.bias.data.copy_(params["bert.embeddings.LayerNorm.bias"])
    layers = []
    for l in range(cfg["num_hidden_layers"]):
        p = "bert.encoder.layer.%d." % l
        layer = nn.TransformerEncoderLayer(H, nh, cfg["intermediate_size"], dropout=0.0, activation="gelu",
                                           layer_norm_eps=eps, batch_first=True, norm_first=False)
        sa = layer.self_attn
        sa.in_proj_weight.data.copy_(torch.cat([params[p + "attention.self.%s.weight" % n]
                                                for n in ("query", "key", "value")]))
        sa.in_proj_bias.data.copy_(torch.cat([params[p + "attention.self.%s.bias" % n]
                                              for n in ("query", "key", "value")]))
        sa.out_proj.weight.data.copy_(params[p + "attention.output.dense.weight"])
        sa.out_proj.bias.data.copy_(params[p + "attention.output.dense.bias"])
        layer.norm1.weight.data.copy_(params[p + "attention.output.LayerNorm.weight"])
        layer.norm1.bias.data.copy_(params[p + "attention.output.LayerNorm.bias"])
        layer.linear1.weight.data.copy_(params[p + "intermediate.dense.weight"])
        layer.linear1.bias.data.copy_(params[p + "intermediate.dense.bias"])
        layer.linear2.weight.data.copy_(params[p + "output.dense.weight"])
        layer.linear2.bias.data.copy_(params[p + "output.dense.bias"])
        layer.norm2.weight.data.copy_(params[p + "output.LayerNorm.weight"])
        layer.norm2.bias.data.copy_(params[p + "output.LayerNorm.bias"])
        layer.eval()
        layers.append(layer)
    dense = nn.Linear(H, H)
    dense.weight.data.copy_(params["cls.predictions.transform.dense.weight"])
    dense.bias.data.copy_(params["cls.predictions.transform.dense.bias"])
    hln = nn.LayerNorm(H, eps=eps)
    hln.weight.data.copy_(params["cls.predictions.transform.LayerNorm.weight"])
    hln.bias.data.copy_(params["cls.predictions.transform.LayerNorm.bias"])
    dec = nn.Linear(H, cfg["vocab_size"])
    dec.weight.data.copy_(params["bert.embeddings.word_embeddings.weight"])
    dec.bias.data.copy_(params["cls.predictions.bias"])
    with torch.no_grad():
        pos = torch.arange(ids.shape[1]).unsqueeze(0).expand_as(ids)
        x = ln(word(ids) + posn(pos) + typ(tt))
        pad = am == 0
        for layer in layers:
            x = layer(x, src_key_padding_mask=pad)
        return dec(hln(nn.functional.gelu(dense(x))))


def expect_error(fn, needle, what):
    try:
        fn()
    except bert_ref.CheckpointError as e:
        check(needle in str(e), "%s: error %r lacks %r" % (what, str(e), needle))
        return
    except Exception as e:  # noqa: BLE001 - any other exception is a failure
        failures.append("%s: raised %s: %s instead of CheckpointError" % (what, type(e).__name__, e))
        return
    failures.append("%s: no error" % what)


def main():
    torch.manual_seed(0)
    cfg = bert_ref.make_config(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=32, max_position_embeddings=20, type_vocab_size=2)
    params = tiny_params(cfg, seed=1)
    stats = {}
    with tempfile.TemporaryDirectory() as tmp:
        # 1. HF layout: tied decoder written once (only the word embeddings).
        d1 = os.path.join(tmp, "f32")
        write_ckpt(d1, cfg, params)
        loaded, lcfg = bert_ref.load_checkpoint(d1)
        for name, t in params.items():
            check(torch.equal(loaded[name], t), "f32 round trip of %s" % name)
        check(lcfg["hidden_size"] == 16, "config round trip")

        B, L = 3, 9
        g = torch.Generator().manual_seed(2)
        ids = torch.randint(0, cfg["vocab_size"], (B, L), generator=g)
        tt = torch.randint(0, 2, (B, L), generator=g)
        am = torch.ones(B, L, dtype=torch.long)
        am[1, 6:] = 0  # item 1 has 3 padding tokens
        am[2, 4:] = 0  # item 2 has 5
        ours = bert_ref.logits_from_checkpoint(d1, ids.tolist(), am.tolist(), tt.tolist())
        check(list(ours.shape) == [B, L, cfg["vocab_size"]], "logits shape %s" % list(ours.shape))
        check(bool(torch.isfinite(ours).all()), "finite logits")
        ref = independent_logits(params, cfg, ids, am, tt)
        real = am.bool()
        diff = (ours - ref).abs()[real].max().item()
        stats["max_abs_diff_vs_nn_modules"] = diff
        stats["logit_std"] = ours.std().item()
        check(diff <= TOL, "logits differ from nn.TransformerEncoderLayer reference by %g" % diff)

        # 2. Padding invariance: item 2 alone, unpadded, gives the same logits.
        n = int(am[2].sum())
        alone = bert_ref.logits_from_params(params, cfg, ids[2:3, :n], am[2:3, :n], tt[2:3, :n])
        pd = (alone[0] - ours[2, :n]).abs().max().item()
        stats["max_abs_diff_padding"] = pd
        check(pd <= TOL, "padding changes real-token logits by %g" % pd)

        # 3. Mask-only head equals every-position logits at those positions.
        mpos = torch.tensor([1, 5, 2])
        mo = bert_ref.logits_from_params(params, cfg, ids, am, tt, positions=mpos)
        md = (mo - ours[torch.arange(B), mpos]).abs().max().item()
        check(md <= 1e-6, "mask-only logits differ by %g" % md)
        mo2 = bert_ref.logits_from_params(params, cfg, ids, am, tt, positions=torch.tensor([[1, 2]] * B))
        check(list(mo2.shape) == [B, 2, cfg["vocab_size"]], "multi-mask shape %s" % list(mo2.shape))

        # 4. Legacy names, explicit decoder weight, ignored pooler/NSP tensors, F16.
        legacy = {}
        for name, t in params.items():
            legacy[name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")] = t.half()
        legacy["cls.predictions.decoder.weight"] = params["bert.embeddings.word_embeddings.weight"].half()
        legacy["bert.pooler.dense.weight"] = torch.zeros(16, 16).half()
        legacy["cls.seq_relationship.bias"] = torch.zeros(2).half()
        d2 = os.path.join(tmp, "f16-legacy")
        write_ckpt(d2, cfg, legacy)
        l2, _ = bert_ref.load_checkpoint(d2)
        for name, t in params.items():
            check(torch.equal(l2[name], t.half().float()), "f16 legacy load of %s" % name)
        check("bert.pooler.dense.weight" not in l2, "pooler not dropped")

        # 5. BF16 file.
        d3 = os.path.join(tmp, "bf16")
        write_ckpt(d3, cfg, {k: v.bfloat16() for k, v in params.items()})
        l3, _ = bert_ref.load_checkpoint(d3)
        for name, t in params.items():
            check(torch.equal(l3[name], t.bfloat16().float()), "bf16 load of %s" % name)

        # 6. Broken checkpoints.
        d4 = os.path.join(tmp, "missing")
        miss = dict(params)
        del miss["bert.encoder.layer.1.output.dense.bias"]
        write_ckpt(d4, cfg, miss)
        expect_error(lambda: bert_ref.load_checkpoint(d4), "bert.encoder.layer.1.output.dense.bias", "missing tensor")
        d5 = os.path.join(tmp, "shape")
        bad = dict(params)
        bad["cls.predictions.bias"] = torch.zeros(49)
        write_ckpt(d5, cfg, bad)
        expect_error(lambda: bert_ref.load_checkpoint(d5), "cls.predictions.bias has shape [49], want [50]", "wrong shape")
        d6 = os.path.join(tmp, "truncated")
        write_ckpt(d6, cfg, params)
        path = os.path.join(d6, "model.safetensors")
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size - 100)
        expect_error(lambda: bert_ref.load_checkpoint(d6), "outside data", "truncated file")
        with open(path, "r+b") as f:
            f.truncate(5)
        expect_error(lambda: bert_ref.load_checkpoint(d6), "too short", "5-byte file")
        d7 = os.path.join(tmp, "act")
        write_ckpt(d7, dict(cfg, hidden_act="relu"), params)
        expect_error(lambda: bert_ref.load_checkpoint(d7), "hidden_act", "unsupported activation")

    print(json.dumps({"ok": not failures, "failures": failures, "torch_version": torch.__version__, **stats}))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
