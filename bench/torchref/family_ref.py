"""Plain-PyTorch references for Hugging Face DistilBertForMaskedLM,
RobertaForMaskedLM and ModernBertForMaskedLM (no transformers), eval mode,
for numeric parity tests.

Like bert_ref.py (whose hand-written safetensors reader it uses), this is an
independent implementation of the math, written from the Hugging Face model
code's structure:

- DistilBERT: word + position embeddings (no token types) -> LayerNorm;
  layers of multi-head attention (q scaled by 1/sqrt(head size) before q.k,
  padded keys filled with finfo(float32).min), out_lin, residual +
  sa_layer_norm, ffn lin1 -> activation -> lin2, residual +
  output_layer_norm; head vocab_transform -> activation -> vocab_layer_norm
  -> vocab_projector (weight tied to the word embeddings) + bias.
  config.json keys: dim, n_layers, n_heads, hidden_dim, activation,
  max_position_embeddings, vocab_size, pad_token_id.
- RoBERTa (and XLM-RoBERTa, model_type "xlm-roberta": XLMRobertaForMaskedLM
  is RobertaForMaskedLM): BERT layers under "roberta."; position ids from the input ids as
  create_position_ids_from_input_ids does (padding_idx + cumulative count of
  non-padding tokens, padding tokens at padding_idx); token type 0 embedding
  added; head lm_head.dense -> erf GELU -> lm_head.layer_norm -> decoder
  (tied) + lm_head.bias.
- ModernBERT (eager/sdpa attention on the padded batch, not the unpadded
  flash path): model.embeddings.tok_embeddings -> embeddings.norm; pre-norm
  layers: attn_norm (none in layer 0) -> attn.Wqkv split into q, k, v ->
  rotary embeddings on q and k (positions 0..L-1, inv_freq =
  1/theta^(2i/head), rotate_half = cat(-x2, x1)) -> softmax(q.k * head^-0.5
  + mask) v -> attn.Wo, added to the residual; mlp_norm -> mlp.Wi chunked
  into input and gate -> act(input) * gate -> mlp.Wo, added to the
  residual; model.final_norm; head.dense -> classifier_activation ->
  head.norm -> decoder (tied) + decoder.bias. Layer l is global when
  l % global_attn_every_n_layers == 0 (global_rope_theta, padding mask
  only), else local (local_rope_theta; keys more than local_attention // 2
  positions away also masked). Masked scores get finfo(float32).min.
  LayerNorms have biases iff norm_bias, Wqkv/Wo iff attention_bias, Wi/Wo
  iff mlp_bias, head.dense iff classifier_bias. config.json keys:
  hidden_size, num_attention_heads, num_hidden_layers, norm_eps,
  hidden_activation, classifier_activation, local_attention,
  global_attn_every_n_layers, global_rope_theta, local_rope_theta.

    import family_ref
    logits = family_ref.logits_from_checkpoint("ckpt", input_ids, attention_mask)

returns [B, L, V] float32 logits at every position.
"""

import json
import math
import os

import torch
import torch.nn.functional as F

import bert_ref

_ACT = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


def _lin(x, p, name):
    return F.linear(x, p[name + ".weight"], p[name + ".bias"])


def _ln(x, p, name, eps):
    return F.layer_norm(x, (x.shape[-1],), p[name + ".weight"], p[name + ".bias"], eps)


def distilbert_logits(p, cfg, input_ids, attention_mask):
    dim, nh = cfg["dim"], cfg["n_heads"]
    hd = dim // nh
    act = _ACT[cfg.get("activation", "gelu")]
    eps = 1e-12
    B, L = input_ids.shape
    pos = torch.arange(L, dtype=torch.long)[None, :].expand(B, L)
    x = (F.embedding(input_ids, p["distilbert.embeddings.word_embeddings.weight"])
         + F.embedding(pos, p["distilbert.embeddings.position_embeddings.weight"]))
    x = _ln(x, p, "distilbert.embeddings.LayerNorm", eps)
    masked = (attention_mask == 0)[:, None, None, :]
    for l in range(cfg["n_layers"]):
        pre = "distilbert.transformer.layer.%d." % l

        def shape(t):
            return t.view(B, L, nh, hd).transpose(1, 2)

        q = shape(_lin(x, p, pre + "attention.q_lin")) / math.sqrt(hd)
        k = shape(_lin(x, p, pre + "attention.k_lin"))
        v = shape(_lin(x, p, pre + "attention.v_lin"))
        scores = torch.matmul(q, k.transpose(2, 3))
        scores = scores.masked_fill(masked, torch.finfo(scores.dtype).min)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(B, L, dim)
        sa = _lin(ctx, p, pre + "attention.out_lin")
        x = _ln(sa + x, p, pre + "sa_layer_norm", eps)
        ffn = _lin(act(_lin(x, p, pre + "ffn.lin1")), p, pre + "ffn.lin2")
        x = _ln(ffn + x, p, pre + "output_layer_norm", eps)
    h = _ln(act(_lin(x, p, "vocab_transform")), p, "vocab_layer_norm", eps)
    w = p.get("vocab_projector.weight", p["distilbert.embeddings.word_embeddings.weight"])
    return F.linear(h, w, p["vocab_projector.bias"])


def roberta_position_ids(input_ids, padding_idx):
    mask = input_ids.ne(padding_idx).long()
    return torch.cumsum(mask, dim=1) * mask + padding_idx


def roberta_logits(p, cfg, input_ids, attention_mask):
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = H // nh
    eps = cfg.get("layer_norm_eps", 1e-5)
    act = _ACT[cfg.get("hidden_act", "gelu")]
    pad = cfg.get("pad_token_id", 1)
    B, L = input_ids.shape
    pos = roberta_position_ids(input_ids, pad)
    x = (F.embedding(input_ids, p["roberta.embeddings.word_embeddings.weight"])
         + F.embedding(pos, p["roberta.embeddings.position_embeddings.weight"])
         + F.embedding(torch.zeros_like(input_ids), p["roberta.embeddings.token_type_embeddings.weight"]))
    x = _ln(x, p, "roberta.embeddings.LayerNorm", eps)
    ext = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for l in range(cfg["num_hidden_layers"]):
        pre = "roberta.encoder.layer.%d." % l

        def shape(t):
            return t.view(B, L, nh, hd).transpose(1, 2)

        q = shape(_lin(x, p, pre + "attention.self.query"))
        k = shape(_lin(x, p, pre + "attention.self.key"))
        v = shape(_lin(x, p, pre + "attention.self.value"))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd) + ext
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(B, L, H)
        x = _ln(_lin(ctx, p, pre + "attention.output.dense") + x, p, pre + "attention.output.LayerNorm", eps)
        i = act(_lin(x, p, pre + "intermediate.dense"))
        x = _ln(_lin(i, p, pre + "output.dense") + x, p, pre + "output.LayerNorm", eps)
    h = _ln(F.gelu(_lin(x, p, "lm_head.dense")), p, "lm_head.layer_norm", eps)
    w = p.get("lm_head.decoder.weight", p["roberta.embeddings.word_embeddings.weight"])
    return F.linear(h, w, p["lm_head.bias"])


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def modernbert_rope(theta, head, length):
    """cos and sin tables [length, head] of rotary base theta."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head, 2, dtype=torch.int64).float() / head))
    angles = torch.outer(torch.arange(length, dtype=torch.int64).float(), inv_freq)
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos(), emb.sin()


def modernbert_encode(p, cfg, input_ids, attention_mask):
    """Last hidden states [B, L, H] of ModernBertModel (final norm included)."""
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = H // nh
    act = _ACT[cfg.get("hidden_activation", "gelu")]
    every = cfg.get("global_attn_every_n_layers", 3)
    window = cfg.get("local_attention", 128)
    g_theta = cfg.get("global_rope_theta", 160000.0)
    l_theta = cfg.get("local_rope_theta", 10000.0)
    if l_theta is None:
        l_theta = g_theta
    B, L = input_ids.shape

    def ln(x, name):
        return _modern_ln(p, cfg, x, name)

    def lin(x, name, flag):
        return _modern_lin(p, cfg, x, name, flag)

    x = ln(F.embedding(input_ids, p["model.embeddings.tok_embeddings.weight"]), "model.embeddings.norm")
    neg = torch.finfo(torch.float32).min
    padded = (attention_mask == 0)[:, None, None, :]
    pos = torch.arange(L)
    far = ((pos[:, None] - pos[None, :]).abs() > window // 2)[None, None]
    global_mask = torch.zeros(B, 1, 1, L).masked_fill(padded, neg)
    local_mask = torch.zeros(B, 1, L, L).masked_fill(padded | far, neg)
    rope = {True: modernbert_rope(g_theta, hd, L), False: modernbert_rope(l_theta, hd, L)}
    for l in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % l
        is_global = l % every == 0
        cos, sin = rope[is_global]
        h = x if l == 0 else ln(x, pre + "attn_norm")
        qkv = lin(h, pre + "attn.Wqkv", "attention_bias").view(B, L, 3, nh, hd)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        scores = torch.matmul(q, k.transpose(2, 3)) * hd ** -0.5
        scores = scores + (global_mask if is_global else local_mask)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(B, L, H)
        x = x + lin(ctx, pre + "attn.Wo", "attention_bias")
        inp, gate = lin(ln(x, pre + "mlp_norm"), pre + "mlp.Wi", "mlp_bias").chunk(2, dim=-1)
        x = x + lin(act(inp) * gate, pre + "mlp.Wo", "mlp_bias")
    return ln(x, "model.final_norm")


def modernbert_head(p, cfg, h):
    """Vocabulary logits of ModernBertForMaskedLM's head and tied decoder."""
    head_act = _ACT[cfg.get("classifier_activation", "gelu")]
    h = _modern_ln(p, cfg, head_act(_modern_lin(p, cfg, h, "head.dense", "classifier_bias")), "head.norm")
    w = p.get("decoder.weight", p["model.embeddings.tok_embeddings.weight"])
    return F.linear(h, w, p["decoder.bias"])


def _modern_bias(p, cfg, name, flag):
    return p[name + ".bias"] if cfg.get(flag, False) else None


def _modern_ln(p, cfg, x, name):
    return F.layer_norm(x, (x.shape[-1],), p[name + ".weight"], _modern_bias(p, cfg, name, "norm_bias"),
                        cfg.get("norm_eps", 1e-5))


def _modern_lin(p, cfg, x, name, flag):
    return F.linear(x, p[name + ".weight"], _modern_bias(p, cfg, name, flag))


def modernbert_logits(p, cfg, input_ids, attention_mask):
    return modernbert_head(p, cfg, modernbert_encode(p, cfg, input_ids, attention_mask))


def logits_from_checkpoint(path, input_ids, attention_mask=None):
    """Loads config.json and model.safetensors from path and returns the
    eval-mode logits [B, L, V] of a DistilBERT, RoBERTa, XLM-RoBERTa or
    ModernBERT masked LM."""
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    raw = bert_ref.load_safetensors(os.path.join(path, "model.safetensors"))
    p = {k: (v.float() if v.is_floating_point() else v) for k, v in raw.items()}
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    mask = torch.ones_like(ids) if attention_mask is None else torch.as_tensor(attention_mask, dtype=torch.long)
    with torch.no_grad():
        if cfg["model_type"] == "distilbert":
            return distilbert_logits(p, cfg, ids, mask)
        if cfg["model_type"] in ("roberta", "xlm-roberta"):
            return roberta_logits(p, cfg, ids, mask)
        if cfg["model_type"] == "modernbert":
            return modernbert_logits(p, cfg, ids, mask)
    raise ValueError("unsupported model_type %r (distilbert, roberta, xlm-roberta or modernbert)" % cfg["model_type"])
