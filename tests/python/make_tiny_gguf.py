"""Write tiny random-weight GGUF models (llama, qwen2) for engine-vs-reference logit tests.

Each model is small (n_embd 256, 2-3 layers, vocab 300) but structurally complete: all hparams keys, a valid byte-level
BPE tokenizer (gpt2 model, 256 byte-alphabet tokens + merges learnt from a fixed text + special tokens), and weights
spread over many ggml types so the engine's dequant/dot kernels are all exercised:
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (quantised with gguf-py) and Q4_K, Q6_K (gguf-py cannot quantise K-quants, so a
small quantiser of our own packs the blocks; the reference dequantises them with gguf-py like every other type, so
any valid bit pattern is a fair test). Norm weights, biases and rope_freqs are F32.

Weights are N(0, 1/n_in) (so activations stay O(1)), norms 1 + 0.1 N(0,1), seeded (deterministic output).

Variants (name -> file name stem):
  llama_plain    3 layers, n_head 4 / n_kv 2 (GQA), head_dim 64, tied output, NORM rope, no scaling
  llama3_scaled  2 layers, GQA, head_dim 32 (explicit key_length), rope_freqs.weight (llama3 scaling), untied output
  llama_linear   2 layers, GQA, head_dim 64, rope.scaling.type=linear factor 4, tied
  qwen2          2 layers, n_head 4 / n_kv 1 (MQA), head_dim 64, q/k/v biases, tied, NEOX rope, general.alignment 64

Library: `write_model(variant, path)`, `write_all(dir) -> {variant: path}`, `VARIANTS`.
CLI:     python3 make_tiny_gguf.py OUT_DIR [variant ...]
"""

import math
import os
import sys

import numpy as np
import gguf

QT = gguf.GGMLQuantizationType

# ---- tokenizer ---------------------------------------------------------------------------------------------------

_TRAIN_TEXT = (
    "The quick brown fox jumps over the lazy dog. The capital of France is Paris, and the capital of Italy is Rome. "
    "There is nothing either good or bad, but thinking makes it so. The sun is shining and the weather is fine. "
    "In the beginning the model reads the text and then it writes the answer to the question."
)


def bytes_to_unicode():
    """GPT-2 byte alphabet: printable bytes map to themselves, the other 68 to U+0100 + n in increasing order."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + n)
            n += 1
    return table


def _learn_merges(n_merges):
    """Tiny deterministic BPE training on _TRAIN_TEXT (words keep their leading space, GPT-2 style)."""
    b2u = bytes_to_unicode()
    words = []
    for i, w in enumerate(_TRAIN_TEXT.split(" ")):
        text = (" " if i else "") + w
        words.append([b2u[b] for b in text.encode("utf-8")])
    merges = []
    for _ in range(n_merges):
        counts = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))  # most frequent, ties lexicographic
        merges.append(best)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if (w[i], w[i + 1]) == best:
                    w[i : i + 2] = [w[i] + w[i + 1]]
                i += 1
    return merges


def make_tokenizer(n_vocab, specials):
    """Returns tokens, token_types, merges with len(tokens) == n_vocab; specials are the last ids."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    merges = _learn_merges(n_vocab - 256 - len(specials))
    for a, b in merges:
        assert a in tokens and b in tokens and a + b not in tokens
        tokens.append(a + b)
    if len(tokens) + len(specials) != n_vocab:
        raise ValueError("training text too short for the requested vocab")
    types = [1] * len(tokens) + [3] * len(specials)
    tokens += specials
    return tokens, types, [f"{a} {b}" for a, b in merges]


# ---- K-quant packers (our own simple quantisers; bit layout per model-formats.md section 2.1) -----------------------


def quantize_q4_k(w):
    """float [rows, n] (n % 256 == 0) -> uint8 [rows, n/256*144]."""
    blocks = w.reshape(-1, 8, 32).astype(np.float64)  # super-block of 8 sub-blocks
    lo = np.minimum(blocks.min(axis=2), 0.0)  # [nb, 8]
    hi = blocks.max(axis=2)
    scale = np.maximum(hi - lo, 1e-12) / 15.0
    mins = -lo
    d = (scale.max(axis=1) / 63.0).astype(np.float16).astype(np.float64)  # [nb]
    dmin = (mins.max(axis=1) / 63.0).astype(np.float16).astype(np.float64)
    sc = np.clip(np.round(scale / np.where(d > 0, d, 1)[:, None]), 1, 63).astype(np.uint8)
    mn = np.clip(np.round(mins / np.where(dmin > 0, dmin, 1)[:, None]), 0, 63).astype(np.uint8)
    eff_scale = d[:, None] * sc
    eff_min = dmin[:, None] * mn
    q = np.clip(np.round((blocks + eff_min[:, :, None]) / eff_scale[:, :, None]), 0, 15).astype(np.uint8)
    q = q.reshape(-1, 256)
    nb = blocks.shape[0]
    scales = np.zeros((nb, 12), dtype=np.uint8)
    scales[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    scales[:, 4:8] = (mn[:, 0:4] & 63) | ((mn[:, 4:8] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:8] & 0xF) | ((mn[:, 4:8] & 0xF) << 4)
    qs = np.zeros((nb, 128), dtype=np.uint8)
    for c in range(4):
        qs[:, 32 * c : 32 * c + 32] = q[:, 64 * c : 64 * c + 32] | (q[:, 64 * c + 32 : 64 * c + 64] << 4)
    out = np.concatenate(
        [d.astype(np.float16).view(np.uint8).reshape(nb, 2), dmin.astype(np.float16).view(np.uint8).reshape(nb, 2), scales, qs],
        axis=1,
    )
    return out.reshape(w.shape[0], -1)


def quantize_q6_k(w):
    """float [rows, n] (n % 256 == 0) -> uint8 [rows, n/256*210]."""
    groups = w.reshape(-1, 16, 16).astype(np.float64)  # 16 groups of 16 per super-block
    nb = groups.shape[0]
    gscale = np.maximum(np.abs(groups).max(axis=2), 1e-12) / 31.0
    d = (gscale.max(axis=1) / 127.0).astype(np.float16).astype(np.float64)
    sc = np.clip(np.round(gscale / np.where(d > 0, d, 1)[:, None]), 1, 127).astype(np.int8)
    eff = d[:, None] * sc
    q = (np.clip(np.round(groups / eff[:, :, None]), -32, 31) + 32).astype(np.uint8).reshape(nb, 256)
    ql = np.zeros((nb, 128), dtype=np.uint8)
    qh = np.zeros((nb, 64), dtype=np.uint8)
    for n in range(2):
        e = q[:, 128 * n : 128 * n + 128]
        ql[:, 64 * n : 64 * n + 32] = (e[:, 0:32] & 0xF) | ((e[:, 64:96] & 0xF) << 4)
        ql[:, 64 * n + 32 : 64 * n + 64] = (e[:, 32:64] & 0xF) | ((e[:, 96:128] & 0xF) << 4)
        qh[:, 32 * n : 32 * n + 32] = (
            (e[:, 0:32] >> 4) | ((e[:, 32:64] >> 4) << 2) | ((e[:, 64:96] >> 4) << 4) | ((e[:, 96:128] >> 4) << 6)
        )
    out = np.concatenate([ql, qh, sc.view(np.uint8), d.astype(np.float16).view(np.uint8).reshape(nb, 2)], axis=1)
    return out.reshape(w.shape[0], -1)


def encode(w, qtype):
    """float32 [rows, n] -> array to hand to GGUFWriter.add_tensor (raw bytes for quantised types)."""
    if qtype == QT.F32:
        return w.astype(np.float32)
    if qtype == QT.F16:
        return w.astype(np.float16)
    if qtype == QT.Q4_K:
        return quantize_q4_k(w)
    if qtype == QT.Q6_K:
        return quantize_q6_k(w)
    return gguf.quants.quantize(w.astype(np.float32), qtype)


# ---- model variants ----------------------------------------------------------------------------------------------

_LLAMA_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>"]
_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Per-layer weight types, cycled over layers. K-quants need n_in % 256 == 0.
_TYPES_A = [
    dict(q=QT.Q8_0, k=QT.Q4_0, v=QT.Q5_0, o=QT.F16, gate=QT.Q4_K, up=QT.Q6_K, down=QT.Q8_0),
    dict(q=QT.Q4_K, k=QT.Q6_K, v=QT.Q8_0, o=QT.Q4_0, gate=QT.Q5_0, up=QT.F16, down=QT.Q6_K),
    dict(q=QT.F32, k=QT.Q4_1, v=QT.Q5_1, o=QT.Q6_K, gate=QT.Q8_0, up=QT.Q4_0, down=QT.Q4_K),
]
# head_dim 32 variant: attn_output has n_in = 128, so no K-quant there.
_TYPES_B = [
    dict(q=QT.Q5_0, k=QT.Q8_0, v=QT.Q4_K, o=QT.Q8_0, gate=QT.Q6_K, up=QT.Q4_K, down=QT.Q5_0),
    dict(q=QT.Q6_K, k=QT.F16, v=QT.Q4_0, o=QT.Q5_0, gate=QT.Q4_K, up=QT.Q8_0, down=QT.Q6_K),
]

VARIANTS = {
    "llama_plain": dict(arch="llama", n_layer=3, n_head=4, n_head_kv=2, head_dim=64, tied=True, types=_TYPES_A,
                        embd_type=QT.Q8_0, rope_base=500000.0, eps=1e-5, seed=1),
    "llama3_scaled": dict(arch="llama", n_layer=2, n_head=4, n_head_kv=2, head_dim=32, tied=False, types=_TYPES_B,
                          embd_type=QT.Q4_K, out_type=QT.Q6_K, rope_base=500000.0, eps=1e-5, llama3_rope=True, seed=2),
    "llama_linear": dict(arch="llama", n_layer=2, n_head=4, n_head_kv=2, head_dim=64, tied=True, types=_TYPES_A[1:],
                         embd_type=QT.F16, rope_base=10000.0, eps=1e-5, linear_factor=4.0, seed=3),
    "qwen2": dict(arch="qwen2", n_layer=2, n_head=4, n_head_kv=1, head_dim=64, tied=True, types=_TYPES_A[::-1],
                  embd_type=QT.Q8_0, rope_base=1e6, eps=1e-6, biases=True, alignment=64, seed=4),
}

N_EMBD, N_FF, N_VOCAB, N_CTX = 256, 512, 300, 4096


def llama3_rope_factors(n_rot, base, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, orig_ctx=64):
    """Divisors ff_i as the HF->GGUF converter stores them in rope_freqs.weight (model-formats.md section 5).
    orig_ctx is tiny (64, vs 8192 in Llama 3) so that short test sequences feel the scaling."""
    out = []
    for i in range(n_rot // 2):
        inv = base ** (-2.0 * i / n_rot)
        wavelen = 2 * math.pi / inv
        if wavelen < orig_ctx / high_freq_factor:
            out.append(1.0)
        elif wavelen > orig_ctx / low_freq_factor:
            out.append(factor)
        else:
            s = (orig_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1.0 / ((1 - s) / factor + s))
    return np.array(out, dtype=np.float32)


def write_model(variant, path):
    cfg = VARIANTS[variant]
    arch = cfg["arch"]
    rng = np.random.default_rng(cfg["seed"])
    hd, nh, nkv = cfg["head_dim"], cfg["n_head"], cfg["n_head_kv"]

    def mat(n_out, n_in, gain=1.0):
        return (rng.standard_normal((n_out, n_in)) * gain / math.sqrt(n_in)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w = gguf.GGUFWriter(path, arch)
    if "alignment" in cfg:
        w.add_custom_alignment(cfg["alignment"])
    w.add_name(f"tiny-{variant}")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(cfg["n_layer"])
    w.add_feed_forward_length(N_FF)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    if hd != N_EMBD // nh:
        w.add_key_length(hd)
        w.add_value_length(hd)
    w.add_layer_norm_rms_eps(cfg["eps"])
    w.add_rope_freq_base(cfg["rope_base"])
    if arch == "llama":
        w.add_rope_dimension_count(hd)
        w.add_vocab_size(N_VOCAB)
    if "linear_factor" in cfg:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(cfg["linear_factor"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)

    specials = _LLAMA_SPECIALS if arch == "llama" else _QWEN_SPECIALS
    tokens, types, merges = make_tokenizer(N_VOCAB, specials)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe" if arch == "llama" else "qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    if arch == "llama":
        w.add_bos_token_id(tokens.index("<|begin_of_text|>"))
        w.add_eos_token_id(tokens.index("<|end_of_text|>"))
        w.add_add_bos_token(True)
    else:
        w.add_bos_token_id(tokens.index("<|endoftext|>"))
        w.add_eos_token_id(tokens.index("<|im_end|>"))
        w.add_pad_token_id(tokens.index("<|endoftext|>"))
        w.add_add_bos_token(False)

    def tensor(name, arr, qtype):
        w.add_tensor(name, encode(arr, qtype), raw_dtype=qtype if qtype not in (QT.F32, QT.F16) else None)

    tensor("token_embd.weight", mat(N_VOCAB, N_EMBD, gain=math.sqrt(N_EMBD) * 0.2), cfg["embd_type"])
    if cfg.get("llama3_rope"):
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(hd, cfg["rope_base"]))
    for il in range(cfg["n_layer"]):
        t = cfg["types"][il % len(cfg["types"])]
        p = f"blk.{il}."
        w.add_tensor(p + "attn_norm.weight", norm(N_EMBD))
        tensor(p + "attn_q.weight", mat(nh * hd, N_EMBD), t["q"])
        tensor(p + "attn_k.weight", mat(nkv * hd, N_EMBD), t["k"])
        tensor(p + "attn_v.weight", mat(nkv * hd, N_EMBD), t["v"])
        if cfg.get("biases"):
            for nm, n in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)):
                w.add_tensor(p + f"attn_{nm}.bias", (0.2 * rng.standard_normal(n)).astype(np.float32))
        tensor(p + "attn_output.weight", mat(N_EMBD, nh * hd), t["o"])
        w.add_tensor(p + "ffn_norm.weight", norm(N_EMBD))
        tensor(p + "ffn_gate.weight", mat(N_FF, N_EMBD, gain=2.0), t["gate"])
        tensor(p + "ffn_up.weight", mat(N_FF, N_EMBD), t["up"])
        tensor(p + "ffn_down.weight", mat(N_EMBD, N_FF), t["down"])
    w.add_tensor("output_norm.weight", norm(N_EMBD))
    if not cfg["tied"]:
        tensor("output.weight", mat(N_VOCAB, N_EMBD, gain=4.0), cfg["out_type"])

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_all(out_dir, variants=None):
    os.makedirs(out_dir, exist_ok=True)
    return {v: write_model(v, os.path.join(out_dir, f"tiny-{v}.gguf")) for v in (variants or VARIANTS)}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for v, p in write_all(sys.argv[1], sys.argv[2:] or None).items():
        print(v, p)
