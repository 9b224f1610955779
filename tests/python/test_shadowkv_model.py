#!/usr/bin/env python3
"""ShadowKV on the real model (Gemma 3 270M): exactness at full rank/budget, NIAH retrieval, long generation.

Env: SHADOWKV_BIN (the CLI), SHADOWKV_MODEL (the GGUF); both required. Text: Debian's GPL-3 license file.
Thresholds are measured in docs/shadowkv-tuning.md (scripts/rank-sweep and the numbers quoted below).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

TEXT = "/usr/share/common-licenses/GPL-3"
RESULTS = []


def check(name, ok, detail):
    RESULTS.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)


def sh(args, env=None):
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({r.returncode}): {r.stderr.strip()[-1500:]}")
    return r.stdout


def tokenize(path, bos=True):
    return [int(x) for x in sh([BIN, "tokenize", "-m", MODEL, "-f", path] + ([] if bos else ["--no-bos"])).split()]


def logits(ids, prompt, kv, out, scalar=False, argmax=False):
    env = dict(os.environ)
    if scalar:
        env["SHADOWKV_SIMD"] = "scalar"  # float decode path: the engine's int8 activations would amplify 1e-7 to 1%
    sh([BIN, "logits", "-m", MODEL, "--tokens", ",".join(map(str, ids)), "--prompt-tokens", str(prompt), "--out", out]
       + (["--argmax-only"] if argmax else []) + kv, env=env)
    return np.fromfile(out, dtype=np.int32 if argmax else np.float32)


SKV = ["--kv", "shadowkv"]
# Key width of Gemma 3 270M is 1 x 256; f32 factors and values so that only float reassociation remains.
EXACT = SKV + ["--rank", "256", "--budget", "100%", "--outliers", "0", "--factor-dtype", "f32", "--value-dtype", "f32"]
# An explicit budget always compresses (the default budget of 2048 tokens would keep a 512-token prompt whole), and a
# short dense tail makes generated tokens fold into compressed blocks within the test's 2000 steps.
SPARSE = SKV + ["--budget", "256"]
FOLDING = SKV + ["--budget", "512", "--dense-tail", "256"]


def test_exactness(tmp, gpl):
    # 512-token prompt + 8 decode steps; a 256-token budget selects about half of the chunks, so it must visibly
    # differ while the exact config must not.
    ids, prompt, steps = gpl[:520], 512, 8
    full = logits(ids, prompt, ["--kv", "full"], f"{tmp}/a_full.bin", scalar=True).reshape(steps + 1, -1)
    exact = logits(ids, prompt, EXACT, f"{tmp}/a_exact.bin", scalar=True).reshape(steps + 1, -1)
    dflt = logits(ids, prompt, SPARSE, f"{tmp}/a_default.bin", scalar=True).reshape(steps + 1, -1)
    scale = np.abs(full).max()
    rel_exact = float(np.abs(exact - full).max() / scale)
    rel_default = float(np.abs(dflt - full).max() / scale)
    # Tolerance: float reassociation only (rank-256 U.SVt rebuild + RoPE + split softmax), measured ~1e-6.
    check("exact config == full (scalar)", rel_exact < 2e-5, f"max |dlogit| / max |logit| = {rel_exact:.2e} (< 2e-5)")
    check("budget-256 config differs from full (the check can fail)", rel_default > 100 * 2e-5,
          f"max rel diff {rel_default:.2e} (> 2e-3)")


def niah_prompt(gpl_text, n_chars, depth, key):
    hay = gpl_text[: gpl_text.rfind("\n", 0, n_chars) + 1]
    cut = hay.rfind("\n", 0, int(len(hay) * depth / 100)) + 1
    needle = f"\nThe secret passkey is {key}. Remember it: the secret passkey is {key}.\n"
    return hay[:cut] + needle + hay[cut:] + "\n\nWhat is the secret passkey mentioned in the text above? " \
                                             "The secret passkey is"


def run_batch(tmp, prompts, kv, n):
    path = f"{tmp}/batch.jsonl"
    with open(path, "w") as f:
        for p in prompts:
            f.write(json.dumps({"prompt": p}) + "\n")
    out = json.loads(sh([BIN, "run", "-m", MODEL, "--json", "--temp", "0", "-n", str(n), "--batch-file", path] + kv))
    return out["results"] if "results" in out else [out]


def test_niah(tmp, gpl_text):
    depths, keys = [10, 50, 90], ["48213", "70594", "31867"]
    prompts = [niah_prompt(gpl_text, 18600, d, k) for d, k in zip(depths, keys)]  # ~4K tokens of GPL-3
    found = {}
    for name, kv in [("full", ["--kv", "full"]), ("shadowkv", SKV)]:
        gens = run_batch(tmp, prompts, kv, 12)
        found[name] = [k in g["text"].replace(" ", "") for g, k in zip(gens, keys)]
        print(f"  {name}: prompt {gens[0]['stats']['prompt_tokens']} tokens, answers "
              f"{[g['text'][:24] for g in gens]}", flush=True)
    n_full = sum(found["full"])
    check("NIAH 4K: full retrieves most needles (else the check is meaningless)", n_full >= 2,
          f"{n_full}/{len(depths)} at depths {depths}")
    missed = [d for d, f, s in zip(depths, found["full"], found["shadowkv"]) if f and not s]
    check("NIAH 4K: shadowkv retrieves every needle full retrieves", not missed,
          f"shadowkv {sum(found['shadowkv'])}/{len(depths)}; missed at depths {missed}")


def test_long_generation(tmp, gpl):
    # Prompt: the first ~2K tokens of GPL-3 (cut at a line end; license text is ~4.6 characters per token).
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    prompt_text = f"{tmp}/c_prompt.txt"
    with open(prompt_text, "w", encoding="utf-8") as f:
        f.write(text[: text.rfind("\n", 0, 9600) + 1])
    n_gen = 2000
    g = json.loads(sh([BIN, "run", "-m", MODEL, "--json", "--temp", "0", "-n", str(n_gen), "-f", prompt_text] + FOLDING))
    st = g["stats"]
    P, G = st["prompt_tokens"], st["generated_tokens"]
    check("2000-token generation with shadowkv", P >= 2000 and G == n_gen,
          f"prompt {P} tokens, generated {G} ({g['stop_reason']}), decode {st['decode_tok_s']:.1f} tok/s")
    parts = st["kv_parts"]
    # Folding: values of generated tokens move to the value store (f16 by default: 512 B per token per global layer,
    # 3 layers) once
    # 256 of them have piled up past the 32-token local window; the dense tail (pre-RoPE K, K and V: 3 KiB per token
    # per layer) stays under 32 + 256 tokens. Without folding the value store would hold only the prompt's chunks.
    # Not in the store: the dense tail, and outlier chunks (12 of the prompt's, about one per 128-token block).
    vs, tail = parts.get("value_store", 0), parts.get("local_tail", 0)
    check("generated tokens were folded into the compressed part",
          vs >= 3 * 512 * (P + G - 600) and tail < 3 * 3 * 1024 * (32 + 256 + 8),
          f"value_store {vs / 2**20:.2f} MiB (>= {3 * 512 * (P + G - 600) / 2**20:.2f}), local_tail {tail / 2**20:.2f} MiB")
    # Closeness to full over 2000 decode steps (folding included), teacher-forced on the real continuation of the
    # text. Not on the generated tokens: greedy output here loops over license phrases that the 15 sliding-window
    # layers alone predict, so even rank 1 + budget 8 agreed 99.1% with full on them (docs/shadowkv-tuning.md).
    ids = gpl[: P + n_gen]
    top = {}
    for name, kv in [("full", ["--kv", "full"]), ("shadowkv", FOLDING)]:
        top[name] = logits(ids, P, kv, f"{tmp}/c_{name}.bin", argmax=True)
    agree = float((top["shadowkv"][:-1] == top["full"][:-1]).mean())
    check("2000 teacher-forced decode steps: top-1 agreement with full", agree >= AGREE_MIN,
          f"{agree:.4f} over {len(top['full']) - 1} steps (>= {AGREE_MIN})")


# Measured: budget 512 + dense tail 256 (this test's FOLDING config) 0.8600; earlier defaults 0.8385; rank 1 + budget 8
# + no outliers 0.507 (docs/shadowkv-tuning.md §5, §7).
AGREE_MIN = 0.75


def main():
    global BIN, MODEL
    BIN, MODEL = os.environ.get("SHADOWKV_BIN"), os.environ.get("SHADOWKV_MODEL")
    for name, v in [("SHADOWKV_BIN", BIN), ("SHADOWKV_MODEL", MODEL), ("text", TEXT)]:
        if not v or not os.path.exists(v):
            print(f"FAIL setup: {name} missing ({v!r})\n0 passed, 1 failed")
            return 1
    t0 = time.time()
    gpl = tokenize(TEXT)
    with open(TEXT, encoding="utf-8") as f:
        gpl_text = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        for fn, arg in [(test_exactness, gpl), (test_niah, gpl_text), (test_long_generation, gpl)]:
            t = time.time()
            try:
                fn(tmp, arg)
            except Exception as e:  # a crash is a failure of that check group, the others still run
                check(fn.__name__, False, f"error: {e}")
            print(f"  ({fn.__name__}: {time.time() - t:.0f}s)", flush=True)
    passed = sum(RESULTS)
    print(f"total {time.time() - t0:.0f}s")
    print(f"{passed} passed, {len(RESULTS) - passed} failed")
    return 0 if passed == len(RESULTS) and RESULTS else 1


if __name__ == "__main__":
    sys.exit(main())
