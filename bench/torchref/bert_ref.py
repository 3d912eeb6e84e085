"""Plain-PyTorch reference for Hugging Face BertForMaskedLM (no transformers).

This module is the project's independent implementation of the BERT masked-LM
forward pass. It is used by bench_ref.py (the PyTorch speed reference) and can
be imported by numeric-parity tests:

    import bert_ref
    cfg = bert_ref.load_config("ckpt/config.json")
    params = bert_ref.load_safetensors("ckpt/model.safetensors")
    logits = bert_ref.logits_from_params(params, cfg, input_ids, attention_mask, token_type_ids)

or in one call: bert_ref.logits_from_checkpoint("ckpt", input_ids, ...).

Parameters are a dict from Hugging Face tensor names (see
shared/reference/hf-formats.md) to torch tensors. safetensors files are read
and written by hand (struct + json + torch.frombuffer); the safetensors
package is not needed. Works with Debian's python3-torch 1.13.
"""

import json
import math
import os
import struct

import torch
import torch.nn.functional as F

# safetensors dtype names <-> torch dtypes and element sizes.
_ST_DTYPES = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
_TORCH_TO_ST = {v[0]: k for k, v in _ST_DTYPES.items()}

BERT_BASE = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "pad_token_id": 0,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "initializer_range": 0.02,
    "model_type": "bert",
    "architectures": ["BertForMaskedLM"],
}


class CheckpointError(Exception):
    """A checkpoint or config that cannot be used, with the reason."""


def make_config(**overrides):
    """Returns a BERT config dict: bert-base values updated with overrides."""
    cfg = dict(BERT_BASE)
    cfg.update(overrides)
    validate_config(cfg)
    return cfg


def validate_config(cfg):
    """Raises CheckpointError when cfg is not a usable BERT config."""
    if cfg.get("model_type", "bert") != "bert":
        raise CheckpointError("unsupported model_type %r (want 'bert')" % cfg.get("model_type"))
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError("unsupported hidden_act %r (want 'gelu', the erf GELU)" % cfg.get("hidden_act"))
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings"):
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            raise CheckpointError("config %s must be a positive integer, got %r" % (key, cfg.get(key)))
    if cfg["hidden_size"] % cfg["num_attention_heads"] != 0:
        raise CheckpointError("hidden_size %d is not a multiple of num_attention_heads %d"
                              % (cfg["hidden_size"], cfg["num_attention_heads"]))


def load_config(path):
    """Reads a Hugging Face config.json (file or directory holding it)."""
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    with open(path, "r", encoding="utf-8") as f:
        cfg = json.load(f)
    full = dict(BERT_BASE)
    full.update(cfg)
    validate_config(full)
    return full


def load_safetensors(path):
    """Reads a safetensors file by hand; returns {name: tensor}.

    Checks the header length, offsets within the file and sizes against
    shapes; raises CheckpointError naming the tensor on any inconsistency.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise CheckpointError("%s: file too short for a safetensors header (%d bytes)" % (path, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError("%s: header length %d exceeds file size %d" % (path, n, len(data)))
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError("%s: bad header JSON: %s" % (path, e))
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype_name = info.get("dtype")
        if dtype_name not in _ST_DTYPES:
            raise CheckpointError("%s: tensor %s: unsupported dtype %r" % (path, name, dtype_name))
        dtype, size = _ST_DTYPES[dtype_name]
        shape = [int(s) for s in info.get("shape", [])]
        begin, end = (int(x) for x in info.get("data_offsets", [-1, -1]))
        numel = math.prod(shape)
        if begin < 0 or end < begin or end > len(body):
            raise CheckpointError("%s: tensor %s: offsets [%d, %d] outside data of %d bytes"
                                  % (path, name, begin, end, len(body)))
        if end - begin != numel * size:
            raise CheckpointError("%s: tensor %s: %d bytes for shape %s of %s (want %d)"
                                  % (path, name, end - begin, shape, dtype_name, numel * size))
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            # bytearray copy: frombuffer needs a writable buffer to avoid a warning,
            # and the tensor must not alias the file data.
            t = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype).reshape(shape)
        out[name] = t
    return out


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} as a safetensors file by hand (little-endian, row-major)."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype not in _TORCH_TO_ST:
            raise CheckpointError("tensor %s: dtype %s not writable" % (name, t.dtype))
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": _TORCH_TO_ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for c in chunks:
            f.write(c)


def param_shapes(cfg):
    """Returns {HF tensor name: shape} of a BertForMaskedLM with tied decoder (written once)."""
    V, H, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    shapes = {
        "bert.embeddings.word_embeddings.weight": [V, H],
        "bert.embeddings.position_embeddings.weight": [cfg["max_position_embeddings"], H],
        "bert.embeddings.token_type_embeddings.weight": [cfg.get("type_vocab_size", 2), H],
        "bert.embeddings.LayerNorm.weight": [H],
        "bert.embeddings.LayerNorm.bias": [H],
        "cls.predictions.bias": [V],
        "cls.predictions.transform.dense.weight": [H, H],
        "cls.predictions.transform.dense.bias": [H],
        "cls.predictions.transform.LayerNorm.weight": [H],
        "cls.predictions.transform.LayerNorm.bias": [H],
    }
    for l in range(cfg["num_hidden_layers"]):
        p = "bert.encoder.layer.%d." % l
        for n in ("query", "key", "value"):
            shapes[p + "attention.self.%s.weight" % n] = [H, H]
            shapes[p + "attention.self.%s.bias" % n] = [H]
        shapes[p + "attention.output.dense.weight"] = [H, H]
        shapes[p + "attention.output.dense.bias"] = [H]
        shapes[p + "attention.output.LayerNorm.weight"] = [H]
        shapes[p + "attention.output.LayerNorm.bias"] = [H]
        shapes[p + "intermediate.dense.weight"] = [I, H]
        shapes[p + "intermediate.dense.bias"] = [I]
        shapes[p + "output.dense.weight"] = [H, I]
        shapes[p + "output.dense.bias"] = [H]
        shapes[p + "output.LayerNorm.weight"] = [H]
        shapes[p + "output.LayerNorm.bias"] = [H]
    return shapes


def init_params(cfg, seed=0, std=None):
    """Random parameters initialised as Hugging Face does: normal(0, initializer_range)
    weights and embeddings, zero biases, LayerNorm weight 1 and bias 0."""
    g = torch.Generator().manual_seed(seed)
    std = cfg.get("initializer_range", 0.02) if std is None else std
    out = {}
    for name, shape in param_shapes(cfg).items():
        if "LayerNorm.weight" in name:
            t = torch.ones(shape)
        elif name.endswith("bias"):
            t = torch.zeros(shape)
        else:
            t = torch.empty(shape).normal_(0.0, std, generator=g)
        out[name] = t
    return out


def canonical_params(raw, cfg):
    """Maps a loaded checkpoint to canonical names: renames LayerNorm gamma/beta,
    resolves the tied decoder weight and decoder bias, drops unused pooler/NSP
    tensors, converts to float32 and checks every expected tensor and shape."""
    p = {}
    for name, t in raw.items():
        if name.startswith("bert.pooler.") or name.startswith("cls.seq_relationship."):
            continue
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        p[name] = t.float() if t.is_floating_point() else t
    if "cls.predictions.bias" not in p and "cls.predictions.decoder.bias" in p:
        p["cls.predictions.bias"] = p["cls.predictions.decoder.bias"]
    p.pop("cls.predictions.decoder.bias", None)
    decoder = p.pop("cls.predictions.decoder.weight", None)
    want = param_shapes(cfg)
    for name, shape in want.items():
        if name not in p:
            raise CheckpointError("missing tensor %s (want shape %s)" % (name, shape))
        if list(p[name].shape) != shape:
            raise CheckpointError("tensor %s has shape %s, want %s" % (name, list(p[name].shape), shape))
    extra = sorted(set(p) - set(want))
    if extra:
        raise CheckpointError("unexpected tensors: %s" % ", ".join(extra))
    if decoder is not None:
        if list(decoder.shape) != want["bert.embeddings.word_embeddings.weight"]:
            raise CheckpointError("tensor cls.predictions.decoder.weight has shape %s, want %s"
                                  % (list(decoder.shape), want["bert.embeddings.word_embeddings.weight"]))
        p["cls.predictions.decoder.weight"] = decoder
    return p


def _linear(x, params, prefix):
    return F.linear(x, params[prefix + ".weight"], params[prefix + ".bias"])


def _layer_norm(x, params, prefix, eps):
    return F.layer_norm(x, (x.shape[-1],), params[prefix + ".weight"], params[prefix + ".bias"], eps)


def encode(params, cfg, input_ids, attention_mask=None, token_type_ids=None, dropout=0.0, training=False):
    """BERT encoder: returns the last hidden states [B, L, H].

    attention_mask [B, L] (1 = token, 0 = padding) is turned into the additive
    mask HF uses: (1 - mask) * finfo(float32).min added to the scores.
    dropout applies (as HF does in training) only when training is True.
    """
    B, L = input_ids.shape
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    hd = H // nh
    eps = cfg.get("layer_norm_eps", 1e-12)
    if L > cfg["max_position_embeddings"]:
        raise CheckpointError("sequence length %d exceeds max_position_embeddings %d"
                              % (L, cfg["max_position_embeddings"]))
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    pos = torch.arange(L, dtype=torch.long).unsqueeze(0).expand(B, L)
    x = (F.embedding(input_ids, params["bert.embeddings.word_embeddings.weight"])
         + F.embedding(pos, params["bert.embeddings.position_embeddings.weight"])
         + F.embedding(token_type_ids, params["bert.embeddings.token_type_embeddings.weight"]))
    x = _layer_norm(x, params, "bert.embeddings.LayerNorm", eps)
    x = F.dropout(x, dropout, training)
    ext = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
    scale = 1.0 / math.sqrt(hd)
    for l in range(cfg["num_hidden_layers"]):
        p = "bert.encoder.layer.%d." % l

        def heads(t):
            return t.view(B, L, nh, hd).transpose(1, 2)

        q = heads(_linear(x, params, p + "attention.self.query"))
        k = heads(_linear(x, params, p + "attention.self.key"))
        v = heads(_linear(x, params, p + "attention.self.value"))
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale + ext
        probs = F.dropout(torch.softmax(scores, dim=-1), dropout, training)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(B, L, H)
        a = F.dropout(_linear(ctx, params, p + "attention.output.dense"), dropout, training)
        x = _layer_norm(a + x, params, p + "attention.output.LayerNorm", eps)
        i = F.gelu(_linear(x, params, p + "intermediate.dense"))
        o = F.dropout(_linear(i, params, p + "output.dense"), dropout, training)
        x = _layer_norm(o + x, params, p + "output.LayerNorm", eps)
    return x


def mlm_head(params, cfg, h):
    """MLM head on hidden states h [..., H]: dense -> erf GELU -> LayerNorm ->
    decoder tied to the word embeddings (+ cls.predictions.bias). Returns [..., V]."""
    eps = cfg.get("layer_norm_eps", 1e-12)
    t = F.gelu(_linear(h, params, "cls.predictions.transform.dense"))
    t = _layer_norm(t, params, "cls.predictions.transform.LayerNorm", eps)
    w = params.get("cls.predictions.decoder.weight", params["bert.embeddings.word_embeddings.weight"])
    return F.linear(t, w, params["cls.predictions.bias"])


def logits_from_params(params, cfg, input_ids, attention_mask=None, token_type_ids=None, positions=None):
    """Eval-mode BertForMaskedLM logits.

    With positions None: logits at every position, [B, L, V] (as HF returns).
    With positions a LongTensor [B] or [B, M]: logits only at those positions,
    [B, V] or [B, M, V] (the head is computed only there).
    """
    with torch.no_grad():
        h = encode(params, cfg, input_ids, attention_mask, token_type_ids)
        if positions is None:
            return mlm_head(params, cfg, h)
        idx = torch.arange(h.shape[0])
        if positions.dim() == 1:
            return mlm_head(params, cfg, h[idx, positions])
        return mlm_head(params, cfg, h[idx[:, None], positions])


def load_checkpoint(path):
    """Loads (params, cfg) from a directory holding config.json and model.safetensors."""
    cfg = load_config(path)
    raw = load_safetensors(os.path.join(path, "model.safetensors"))
    return canonical_params(raw, cfg), cfg


def logits_from_checkpoint(path, input_ids, attention_mask=None, token_type_ids=None):
    """Loads a checkpoint directory and returns logits [B, L, V] for the inputs
    (lists or LongTensors)."""
    params, cfg = load_checkpoint(path)
    as_long = lambda v: None if v is None else torch.as_tensor(v, dtype=torch.long)
    return logits_from_params(params, cfg, as_long(input_ids), as_long(attention_mask), as_long(token_type_ids))
