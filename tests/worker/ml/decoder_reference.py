#!/usr/bin/python3
"""Independent reference for worker/ml/decoder_lm: small random GPT-2 and Llama
models written with Hugging Face parameter names, and their logits and loss
computed here in plain PyTorch (Debian's python3-torch), following the
Hugging Face modelling code's arithmetic: Conv1D weights [in, out], GELU
"gelu_new" (tanh), RMSNorm in float32, rotate-half rotary embeddings,
repeat_kv for grouped-query attention.

usage: decoder_reference.py OUT_DIR
writes OUT_DIR/{gpt2,llama}.safetensors (the checkpoint; GPT-2 as float16
under "transformer.", with its causal-mask buffers; Llama as bfloat16 with an
untied lm_head) and OUT_DIR/{gpt2,llama}_expected.safetensors (tokens,
attention_mask, loss_mask as int64, logits and loss as float32).

The configs must match kGpt2Reference/kLlamaReference in decoder_lm_test.cc.
"""
import json
import math
import struct
import sys

import torch

CONFIGS = {
    "gpt2": dict(vocab=61, context=16, dim=32, layers=2, heads=4, kv_heads=4,
                 mlp=128, eps=1e-5),
    "llama": dict(vocab=61, context=16, dim=32, layers=2, heads=4, kv_heads=2,
                  mlp=48, eps=1e-6, theta=10000.0),
}

DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16",
               torch.bfloat16: "BF16", torch.int64: "I64"}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        if t.dtype == torch.bfloat16:
            data = t.view(torch.int16).numpy().tobytes()
        else:
            data = t.numpy().tobytes()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def random_weights(shapes, generator, dtype):
    """Uniform(-0.3, 0.3) values, rounded to `dtype` (what the file holds);
    norms' weights near 1. Returned in float32 for the computation."""
    weights = {}
    for name, shape in shapes.items():
        values = torch.rand(shape, generator=generator) * 0.6 - 0.3
        if "ln" in name or "norm" in name:
            values = values + (1.0 if name.endswith("weight") else 0.0)
        weights[name] = values.to(dtype).to(torch.float32)
    return weights


def attention(q, k, v, allowed):
    d = q.shape[-1]
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    scores = scores.masked_fill(~allowed, torch.finfo(torch.float32).min)
    return torch.softmax(scores, dim=-1) @ v


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(
        math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_shapes(c):
    d, f = c["dim"], c["mlp"]
    shapes = {"wte.weight": (c["vocab"], d), "wpe.weight": (c["context"], d),
              "ln_f.weight": (d,), "ln_f.bias": (d,)}
    for i in range(c["layers"]):
        p = f"h.{i}."
        shapes.update({
            p + "ln_1.weight": (d,), p + "ln_1.bias": (d,),
            p + "attn.c_attn.weight": (d, 3 * d),
            p + "attn.c_attn.bias": (3 * d,),
            p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,),
            p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
            p + "mlp.c_fc.weight": (d, f), p + "mlp.c_fc.bias": (f,),
            p + "mlp.c_proj.weight": (f, d), p + "mlp.c_proj.bias": (d,)})
    return shapes


def gpt2_forward(w, c, tokens, mask):
    n, t = tokens.shape
    d, heads = c["dim"], c["heads"]
    hd = d // heads
    allowed = (torch.tril(torch.ones(t, t, dtype=torch.bool))[None, None]
               & mask.bool()[:, None, None, :])
    h = w["wte.weight"][tokens] + w["wpe.weight"][:t]

    def ln(x, p):
        return torch.nn.functional.layer_norm(
            x, (d,), w[p + ".weight"], w[p + ".bias"], c["eps"])

    def heads_of(x):
        return x.view(n, t, heads, hd).transpose(1, 2)

    for i in range(c["layers"]):
        p = f"h.{i}."
        x = ln(h, p + "ln_1")
        qkv = x @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(d, dim=-1)
        a = attention(heads_of(q), heads_of(k), heads_of(v), allowed)
        a = a.transpose(1, 2).reshape(n, t, d)
        h = h + a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        x = ln(h, p + "ln_2")
        m = gelu_new(x @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        h = h + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    return ln(h, "ln_f") @ w["wte.weight"].T


def llama_shapes(c):
    d, f = c["dim"], c["mlp"]
    kv = c["kv_heads"] * (d // c["heads"])
    shapes = {"model.embed_tokens.weight": (c["vocab"], d),
              "model.norm.weight": (d,), "lm_head.weight": (c["vocab"], d)}
    for i in range(c["layers"]):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (d, d),
            p + "self_attn.k_proj.weight": (kv, d),
            p + "self_attn.v_proj.weight": (kv, d),
            p + "self_attn.o_proj.weight": (d, d),
            p + "post_attention_layernorm.weight": (d,),
            p + "mlp.gate_proj.weight": (f, d),
            p + "mlp.up_proj.weight": (f, d),
            p + "mlp.down_proj.weight": (d, f)})
    return shapes


def llama_forward(w, c, tokens, mask):
    n, t = tokens.shape
    d, heads, kv_heads = c["dim"], c["heads"], c["kv_heads"]
    hd = d // heads
    allowed = (torch.tril(torch.ones(t, t, dtype=torch.bool))[None, None]
               & mask.bool()[:, None, None, :])
    inv_freq = 1.0 / (c["theta"] ** (
        torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    freqs = torch.outer(torch.arange(t).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()

    def rotate_half(x):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return torch.cat((-x2, x1), dim=-1)

    def rms(x, name):
        variance = x.pow(2).mean(-1, keepdim=True)
        return w[name] * (x * torch.rsqrt(variance + c["eps"]))

    def repeat_kv(x):
        rep = heads // kv_heads
        b, kvh, s, e = x.shape
        return x[:, :, None].expand(b, kvh, rep, s, e).reshape(b, kvh * rep,
                                                               s, e)

    h = w["model.embed_tokens.weight"][tokens]
    for i in range(c["layers"]):
        p = f"model.layers.{i}."
        x = rms(h, p + "input_layernorm.weight")
        q = (x @ w[p + "self_attn.q_proj.weight"].T).view(
            n, t, heads, hd).transpose(1, 2)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).view(
            n, t, kv_heads, hd).transpose(1, 2)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).view(
            n, t, kv_heads, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = attention(q, repeat_kv(k), repeat_kv(v), allowed)
        a = a.transpose(1, 2).reshape(n, t, d)
        h = h + a @ w[p + "self_attn.o_proj.weight"].T
        x = rms(h, p + "post_attention_layernorm.weight")
        gate = torch.nn.functional.silu(x @ w[p + "mlp.gate_proj.weight"].T)
        up = x @ w[p + "mlp.up_proj.weight"].T
        h = h + (gate * up) @ w[p + "mlp.down_proj.weight"].T
    return rms(h, "model.norm.weight") @ w["lm_head.weight"].T


def causal_lm_loss(logits, tokens, mask, loss_mask):
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
    picked = log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    weights = (mask[:, 1:] * loss_mask[:, 1:]).float()
    return -(picked * weights).sum() / weights.sum()


def main():
    out_dir = sys.argv[1]
    generator = torch.Generator().manual_seed(20261207)
    # Rows of 10, 7 and 1 real tokens, right-padded with token 0.
    lengths = [10, 7, 1]
    tokens = torch.randint(0, 61, (3, 10), generator=generator)
    mask = torch.zeros(3, 10, dtype=torch.int64)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        tokens[row, length:] = 0
    # Learn the answer: the second half of each sequence.
    loss_mask = torch.zeros(3, 10, dtype=torch.int64)
    loss_mask[:, 5:] = 1

    for layout, dtype in (("gpt2", torch.float16), ("llama", torch.bfloat16)):
        c = CONFIGS[layout]
        shapes = gpt2_shapes(c) if layout == "gpt2" else llama_shapes(c)
        w = random_weights(shapes, generator, dtype)
        forward = gpt2_forward if layout == "gpt2" else llama_forward
        with torch.no_grad():
            logits = forward(w, c, tokens, mask)
            loss = causal_lm_loss(logits, tokens, mask, loss_mask)
        if layout == "gpt2":
            checkpoint = {"transformer." + k: v.to(dtype) for k, v in w.items()}
            for i in range(c["layers"]):
                causal = torch.tril(torch.ones(c["context"], c["context"]))
                checkpoint[f"transformer.h.{i}.attn.bias"] = (
                    causal[None, None].to(dtype))
        else:
            checkpoint = {k: v.to(dtype) for k, v in w.items()}
        write_safetensors(f"{out_dir}/{layout}.safetensors", checkpoint)
        write_safetensors(f"{out_dir}/{layout}_expected.safetensors", {
            "tokens": tokens, "attention_mask": mask, "loss_mask": loss_mask,
            "logits": logits.float(), "loss": loss.float().reshape(1)})


if __name__ == "__main__":
    main()
