"""Independent numpy reference forward pass for GGUF models (gemma3 text, llama, qwen2).

Purpose: an oracle for the C++ engine's logits. It shares no code with the engine: weights are read with the official
gguf-py (`gguf.GGUFReader`) and dequantised with `gguf.quants.dequantize`; the maths follows
/work/shared/docs/model-formats.md sections 3-5 and 7.

Precision: weights are dequantised to float32 (exactly what the quant formats encode), all activations, attention and
logits are computed in float64. So the reference is the "ideal" result of the quantised model; the engine (8-bit
activations in integer dot products, maybe an f16 KV cache, fp16 GELU tables) is expected to deviate by ~1e-2 of the
logit scale. `Model(..., emulate_int8=True, kv_f16=True)` mimics those engine roundings, which lets a test measure how
large that deviation should be instead of guessing.

Memory: layer weights are dequantised on first use (optionally cached, ~400 MB for Gemma 3 270M); the vocab matrix
is never held whole: embedding rows are dequantised per lookup and the output head is applied in row chunks.

Usage as a library:
    from reference_forward import Model, forward
    logits = forward("model.gguf", [2, 818, 5279], positions="all")   # [n_tokens, n_vocab] float64
CLI:
    python3 reference_forward.py MODEL.gguf --tokens 2,818,5279 [--all] [--top 5] [--out logits.bin]
"""

import argparse
import math
import sys
import time

import numpy as np
import gguf

F32_TYPES = (gguf.GGMLQuantizationType.F32,)
F16_TYPES = (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16)
K_TYPES = (
    gguf.GGMLQuantizationType.Q2_K,
    gguf.GGMLQuantizationType.Q3_K,
    gguf.GGMLQuantizationType.Q4_K,
    gguf.GGMLQuantizationType.Q5_K,
    gguf.GGMLQuantizationType.Q6_K,
)


def _rms(x, eps):
    """RMSNorm over the last axis, without weight."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def _gelu_tanh(u):
    return 0.5 * u * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u**3)))


def _silu(u):
    return u / (1.0 + np.exp(-u))


def _quant_rows(x, block):
    """Round x [T, n] to symmetric 8-bit blocks along the last axis (emulates Q8_0 / Q8_K activations)."""
    t, n = x.shape
    xb = x.reshape(t, n // block, block)
    amax = np.max(np.abs(xb), axis=-1, keepdims=True)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    return (np.round(xb * inv) * d).reshape(t, n)


class Model:
    """A GGUF model opened with gguf-py; hparams parsed, weights dequantised lazily."""

    def __init__(self, path, cache_weights=True, emulate_int8=False, kv_f16=False):
        self.path = path
        self.reader = gguf.GGUFReader(path)
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.cache_weights = cache_weights
        self.emulate_int8 = emulate_int8
        self.kv_f16 = kv_f16
        self._cache = {}
        self._vocab = None

        a = self.arch = self.field("general.architecture")
        if a not in ("gemma3", "llama", "qwen2"):
            raise ValueError(f"unsupported architecture {a!r}")
        self.n_embd = int(self.field(f"{a}.embedding_length"))
        self.n_layer = int(self.field(f"{a}.block_count"))
        self.n_ff = int(self.field(f"{a}.feed_forward_length"))
        self.n_head = int(self.field(f"{a}.attention.head_count"))
        self.n_head_kv = int(self.field(f"{a}.attention.head_count_kv", self.n_head))
        self.head_dim = int(self.field(f"{a}.attention.key_length", self.n_embd // self.n_head))
        self.head_dim_v = int(self.field(f"{a}.attention.value_length", self.head_dim))
        self.eps = float(self.field(f"{a}.attention.layer_norm_rms_epsilon"))
        self.rope_base = float(self.field(f"{a}.rope.freq_base", 10000.0))
        self.n_rot = int(self.field(f"{a}.rope.dimension_count", self.head_dim))
        scaling_type = self.field(f"{a}.rope.scaling.type", None)
        factor = self.field(f"{a}.rope.scaling.factor", None)
        if factor is None:
            factor = self.field(f"{a}.rope.scale_linear", None)
        if scaling_type not in (None, "none", "linear"):
            raise NotImplementedError(f"rope scaling type {scaling_type!r}")
        if scaling_type == "none" or factor is None or float(factor) == 0.0:
            self.rope_freq_scale = 1.0
        else:
            self.rope_freq_scale = 1.0 / float(factor)
        self.rope_freqs = self.weight("rope_freqs.weight").astype(np.float64) if self.has("rope_freqs.weight") else None
        self.sliding_window = int(self.field(f"{a}.attention.sliding_window", 512))
        self.n_vocab = int(self.tensors["token_embd.weight"].shape[1])
        self.neox = a in ("gemma3", "qwen2")  # llama GGUF q/k are permuted for NORM (interleaved) rope
        if self.n_head % self.n_head_kv != 0:
            raise ValueError("n_head must be a multiple of n_head_kv")

    # ---- metadata / weights -------------------------------------------------------------------------------------
    def field(self, key, default=KeyError):
        f = self.reader.fields.get(key)
        if f is None:
            if default is KeyError:
                raise KeyError(f"missing GGUF key {key}")
            return default
        return f.contents()

    def has(self, name):
        return name in self.tensors

    def weight(self, name):
        """Dequantised float32 weight, numpy order ([n_out, n_in] for matrices)."""
        if name in self._cache:
            return self._cache[name]
        t = self.tensors[name]
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        w = w.reshape(tuple(int(d) for d in reversed(t.shape)))
        if self.cache_weights:
            self._cache[name] = w
        return w

    def _act(self, x, qtype):
        """Optionally round activations the way an int8 engine does before a quantised dot product."""
        if not self.emulate_int8 or qtype in F32_TYPES:
            return x
        if qtype in F16_TYPES:
            return x.astype(np.float16).astype(np.float64)
        return _quant_rows(x, 256 if qtype in K_TYPES else 32)

    def linear(self, name, x):
        """x [T, n_in] float64 -> x @ W^T [T, n_out] (+ bias if present)."""
        y = self._act(x, self.tensors[name].tensor_type) @ self.weight(name).T.astype(np.float64)
        bias = name.replace(".weight", ".bias")
        if self.has(bias):
            y = y + self.weight(bias)
        return y

    def embed(self, ids):
        t = self.tensors["token_embd.weight"]
        rows = np.asarray(t.data)[np.asarray(ids)]
        return gguf.quants.dequantize(rows, t.tensor_type).astype(np.float64).reshape(len(ids), self.n_embd)

    def output(self, h, chunk=32768):
        """Logits for normalised hidden states h [T, n_embd]; the head matrix is dequantised in row chunks."""
        name = "output.weight" if self.has("output.weight") else "token_embd.weight"
        t = self.tensors[name]
        data = np.asarray(t.data)
        n_vocab = int(t.shape[1])
        hq = self._act(h, t.tensor_type)
        out = np.empty((h.shape[0], n_vocab), dtype=np.float64)
        for r0 in range(0, n_vocab, chunk):
            r1 = min(r0 + chunk, n_vocab)
            w = gguf.quants.dequantize(data[r0:r1], t.tensor_type).reshape(r1 - r0, self.n_embd)
            out[:, r0:r1] = hq @ w.T.astype(np.float64)
        return out

    def vocab(self):
        """Token strings (list, id -> text)."""
        if self._vocab is None:
            f = self.reader.fields["tokenizer.ggml.tokens"]
            self._vocab = [bytes(f.parts[i]).decode("utf-8", errors="replace") for i in f.data]
        return self._vocab

    def token_ids(self, pieces):
        """Ids of exact vocab pieces (raises if a piece is missing)."""
        index = {}
        for i, p in enumerate(self.vocab()):
            index.setdefault(p, i)
        missing = [p for p in pieces if p not in index]
        if missing:
            raise KeyError(f"pieces not in vocab: {missing}")
        return [index[p] for p in pieces]

    # ---- rope / attention -------------------------------------------------------------------------------------
    def rope(self, x, pos, base, freq_scale, use_freq_factors):
        """Rotate x [T, H, hd] in place-free fashion; dims >= n_rot pass through."""
        n_rot = self.n_rot
        half = n_rot // 2
        inv = base ** (-2.0 * np.arange(half, dtype=np.float64) / n_rot) * freq_scale
        if use_freq_factors and self.rope_freqs is not None:
            inv = inv / self.rope_freqs[:half]
        theta = pos[:, None].astype(np.float64) * inv[None, :]  # [T, half]
        cos = np.cos(theta)[:, None, :]
        sin = np.sin(theta)[:, None, :]
        y = x.copy()
        if self.neox:
            a, b = x[..., :half], x[..., half:n_rot]
            y[..., :half] = a * cos - b * sin
            y[..., half:n_rot] = a * sin + b * cos
        else:
            a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
            y[..., 0:n_rot:2] = a * cos - b * sin
            y[..., 1:n_rot:2] = a * sin + b * cos
        return y

    def attention(self, q, k, v, window):
        """q [T, H, hd], k/v [T, Hkv, hd]; causal, optional sliding window (key visible iff 0 <= pq-pk < window)."""
        n_tok = q.shape[0]
        if self.kv_f16:
            k = k.astype(np.float16).astype(np.float64)
            v = v.astype(np.float16).astype(np.float64)
        pq = np.arange(n_tok)[:, None]
        pk = np.arange(n_tok)[None, :]
        visible = pk <= pq
        if window is not None:
            visible &= (pq - pk) < window
        scale = 1.0 / math.sqrt(self.head_dim)
        group = self.n_head // self.n_head_kv
        out = np.empty((n_tok, self.n_head, v.shape[2]), dtype=np.float64)
        for h in range(self.n_head):
            kv = h // group
            s = (q[:, h, :] @ k[:, kv, :].T) * scale
            s = np.where(visible, s, -np.inf)
            s = s - s.max(axis=1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=1, keepdims=True)
            out[:, h, :] = p @ v[:, kv, :]
        return out.reshape(n_tok, -1)

    # ---- layers -----------------------------------------------------------------------------------------------
    def layer(self, il, x, pos):
        p = f"blk.{il}."
        n_tok = x.shape[0]
        gemma = self.arch == "gemma3"
        h = _rms(x, self.eps) * self.weight(p + "attn_norm.weight")
        q = self.linear(p + "attn_q.weight", h).reshape(n_tok, self.n_head, self.head_dim)
        k = self.linear(p + "attn_k.weight", h).reshape(n_tok, self.n_head_kv, self.head_dim)
        v = self.linear(p + "attn_v.weight", h).reshape(n_tok, self.n_head_kv, self.head_dim_v)
        window = None
        if gemma:
            q = _rms(q, self.eps) * self.weight(p + "attn_q_norm.weight")
            k = _rms(k, self.eps) * self.weight(p + "attn_k_norm.weight")
            is_global = il % 6 == 5
            if is_global:
                base, fscale = self.rope_base, self.rope_freq_scale
            else:
                base, fscale, window = 10000.0, 1.0, self.sliding_window
            q = self.rope(q, pos, base, fscale, False)
            k = self.rope(k, pos, base, fscale, False)
        else:
            q = self.rope(q, pos, self.rope_base, self.rope_freq_scale, True)
            k = self.rope(k, pos, self.rope_base, self.rope_freq_scale, True)
        o = self.linear(p + "attn_output.weight", self.attention(q, k, v, window))
        if gemma:
            x = x + _rms(o, self.eps) * self.weight(p + "post_attention_norm.weight")
        else:
            x = x + o
        m = _rms(x, self.eps) * self.weight(p + "ffn_norm.weight")
        g = self.linear(p + "ffn_gate.weight", m)
        u = self.linear(p + "ffn_up.weight", m)
        act = _gelu_tanh(g) if gemma else _silu(g)
        f = self.linear(p + "ffn_down.weight", act * u)
        if gemma:
            x = x + _rms(f, self.eps) * self.weight(p + "post_ffw_norm.weight")
        else:
            x = x + f
        return x


def forward(model, token_ids, positions=None):
    """Logits [len(positions), n_vocab] float64. model: Model or GGUF path; positions: None (last), "all" or ints."""
    if not isinstance(model, Model):
        model = Model(model)
    ids = [int(t) for t in token_ids]
    if not ids:
        raise ValueError("empty token list")
    if min(ids) < 0 or max(ids) >= model.n_vocab:
        raise ValueError("token id out of range")
    if positions is None:
        positions = [len(ids) - 1]
    elif isinstance(positions, str) and positions == "all":
        positions = list(range(len(ids)))
    x = model.embed(ids)
    if model.arch == "gemma3":
        x = x * math.sqrt(model.n_embd)
    pos = np.arange(len(ids))
    for il in range(model.n_layer):
        x = model.layer(il, x, pos)
    h = _rms(x[np.asarray(positions)], model.eps) * model.weight("output_norm.weight")
    return model.output(h)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", help="comma-separated token ids")
    ap.add_argument("--pieces", help="space-separated exact vocab pieces (alternative to --tokens)")
    ap.add_argument("--all", action="store_true", help="logits for every position (default: last)")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--out", help="write float32 LE logits here")
    args = ap.parse_args()
    t0 = time.time()
    m = Model(args.model)
    t1 = time.time()
    ids = [int(s) for s in args.tokens.split(",")] if args.tokens else m.token_ids(args.pieces.split(" "))
    logits = forward(m, ids, "all" if args.all else None)
    t2 = time.time()
    vocab = m.vocab()
    print(f"tokens {ids}")
    print(f"load {t1 - t0:.2f}s forward {t2 - t1:.2f}s ({len(ids)} tokens)")
    last = logits[-1]
    for i in np.argsort(-last)[: args.top]:
        print(f"  {i:7d} {last[i]:10.4f} {vocab[i]!r}")
    if args.out:
        logits.astype("<f4").tofile(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
