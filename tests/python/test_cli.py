"""ctest driver: the `shadowkv` CLI on the real model and on bad input.

Checks
  - `run` answers a factual question greedily ("Paris"), streams text, and `--json` carries the documented stats keys.
  - batched decode (`--batch-file`, prompts of different lengths) gives each prompt the same greedy text as a run of
    its own (weights are shared per step; attention is per sequence).
  - `perplexity` of GPL-3 (/usr/share/common-licenses/GPL-3, from Debian's base-files) at -c 2048 is within 1% of
    llama.cpp's llama-perplexity on the same GGUF and file (14.5064; 3 windows x 1023 scored tokens). Without BOS
    at the start of every window (llama.cpp's rule for models with add_bos_token) it was 15.74.
  - known model names: `models` lists them (fetched or not, size); `-m NAME` resolves to $SHADOWKV_MODELS/<file>
    (checked with a temp SHADOWKV_MODELS holding a link to the Gemma file); an unfetched name is an error naming
    `scripts/fetch-model NAME`, an unknown one lists the known names.
  - bad input is a one-line `error:` and a non-zero exit, never a crash: missing/corrupt/truncated GGUF, unknown
    architecture, unknown KV policy, prompt longer than the context, bad flags, bad JSONL, bad token ids.
Env: SHADOWKV_BIN, SHADOWKV_MODEL (fails if missing). Prints one line per check and "N passed, M failed".
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

BIN = os.environ.get("SHADOWKV_BIN", "")
MODEL = os.environ.get("SHADOWKV_MODEL", "")
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail}".rstrip(), flush=True)


LLAMA_CPP_GPL3_PPL = 14.5064  # llama-perplexity -m gemma-3-270m-q4_k_m.gguf -f GPL-3 -c 2048 (see README)


def run(args, timeout=600, env=None):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def expect_error(name, args, word, env=None):
    rc, out, err = run(args, timeout=120, env=env)
    lines = [l for l in err.strip().splitlines() if l.strip()]
    ok = rc not in (0, -6, -11) and rc > 0 and any(word.lower() in l.lower() for l in lines)
    check(name, ok, f"rc={rc} stderr={err.strip()[:200]!r}")


def gguf_header(arch="llama"):
    # A valid GGUF v3 with one string key and no tensors.
    key, val = b"general.architecture", arch.encode()
    return (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) +
            struct.pack("<Q", len(val)) + val)


def blas_kernels_fit_the_cpu():
    # OpenBLAS 0.3.21 falls back to its SSE3 "Prescott" kernels on CPUs it does not know (a Xeon of family 6 model
    # 207 here: prefill 3x slower); the binary then re-executes itself with OPENBLAS_CORETYPE (apps/main.cpp).
    # OPENBLAS_VERBOSE=2 makes OpenBLAS print "Core: NAME" when it loads: the last one is what the command ran on.
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env["OPENBLAS_VERBOSE"] = "2"
    rc, _, err = run(["models"], timeout=60, env=env)
    cores = [l.split(":", 1)[1].strip().lower() for l in err.splitlines() if l.startswith("Core:")]
    core = cores[-1] if cores else ""
    # The kernel sets blas_core_override() accepts as fitting a CPU with AVX2 (OpenBLAS may pick Zen or Haswell on
    # an AVX-512 CPU it knows; only a pre-AVX2 set on an AVX2 CPU is the failure this guards against).
    fit = {"haswell", "skylakex", "cooperlake", "sapphirerapids", "zen"} if {"avx2", "fma"} <= flags else None
    check("OpenBLAS runs kernels that fit the CPU", rc == 0 and (fit is None or core in fit), f"core={core!r}")


def main():
    if not BIN or not os.path.exists(BIN):
        check("SHADOWKV_BIN set", False, BIN)
    if not MODEL or not os.path.exists(MODEL):
        check("SHADOWKV_MODEL set", False, MODEL)
    if results:
        return finish()
    tmp = tempfile.mkdtemp(prefix="skv-cli-")
    blas_kernels_fit_the_cpu()

    # 1. A factual answer, greedy.
    rc, out, err = run(["run", "-m", MODEL, "-p", "Question: What is the capital of France?\nAnswer:", "-n", "8",
                        "--temp", "0"])
    check("run answers Paris", rc == 0 and "Paris" in out, repr(out[:80]))
    check("run prints stats to stderr", "decode" in err and "tok/s" in err and "kv" in err, err.strip()[-160:])

    rc, out, err = run(["run", "-m", MODEL, "-p", "The capital of France is", "-n", "8", "--temp", "0", "--json"])
    try:
        j = json.loads(out)
        keys = {"prompt_tokens", "generated_tokens", "prefill_tok_s", "decode_tok_s", "kv_bytes", "kv_hot_bytes",
                "kv_cold_bytes", "kv_full_bytes"}
        ok = rc == 0 and isinstance(j.get("text"), str) and keys <= set(j["stats"]) and j["stats"]["prompt_tokens"] == 6
        ok = ok and j["stats"]["generated_tokens"] == 8 and j["stats"]["kv_bytes"] == j["stats"]["kv_full_bytes"]
        check("run --json has text and stats", ok, json.dumps(j["stats"])[:200])
    except (ValueError, KeyError) as e:
        check("run --json parses", False, f"{e}: {out[:200]!r}")

    # 2. Batched decode == one run per prompt (greedy, same numerics per row).
    prompts = ["Question: What is the capital of Italy?\nAnswer:",
               "Once upon a time, in a small village by the sea, there lived",
               "def fibonacci(n):"]
    bf = os.path.join(tmp, "batch.jsonl")
    with open(bf, "w") as f:
        f.write(json.dumps({"prompt": prompts[0]}) + "\n" + prompts[1] + "\n" + json.dumps({"prompt": prompts[2]}) + "\n")
    rc, out, err = run(["run", "-m", MODEL, "--batch-file", bf, "-n", "16", "--temp", "0", "--json"])
    try:
        batch = [r["text"] for r in json.loads(out)["results"]]
    except (ValueError, KeyError):
        batch = []
    check("batch run returns 3 results", rc == 0 and len(batch) == 3, err.strip()[-200:])
    for i, p in enumerate(prompts):
        rc1, out1, _ = run(["run", "-m", MODEL, "-p", p, "-n", "16", "--temp", "0", "--json"])
        single = json.loads(out1)["text"] if rc1 == 0 else None
        check(f"batch item {i} == single run", len(batch) == 3 and batch[i] == single,
              f"{batch[i] if len(batch) == 3 else None!r} vs {single!r}")

    # 3. Perplexity of a fixed English document.
    rc, out, err = run(["perplexity", "-m", MODEL, "-f", "/usr/share/common-licenses/GPL-3", "-c", "2048", "--json"],
                       timeout=1200)
    try:
        j = json.loads(out)
        ppl, scored, windows = j["perplexity"], j["scored_tokens"], j["windows"]
    except (ValueError, KeyError):
        ppl, scored, windows = float("nan"), 0, 0
    check("perplexity of GPL-3 within 1% of llama.cpp", rc == 0 and abs(ppl / LLAMA_CPP_GPL3_PPL - 1) < 0.01,
          f"ppl={ppl} vs {LLAMA_CPP_GPL3_PPL}")
    check("perplexity scores 3 windows x 1023 tokens", scored == 3069 and windows == 3, f"{windows} x {scored}")

    model_names(tmp)

    # 4. Bad input.
    expect_error("missing model file", ["run", "-m", os.path.join(tmp, "nope.gguf"), "-p", "x"], "nope.gguf")
    bad = os.path.join(tmp, "bad.gguf")
    with open(bad, "wb") as f:
        f.write(b"NOTAGGUF" * 8)
    expect_error("bad magic", ["run", "-m", bad, "-p", "x"], "magic")
    trunc = os.path.join(tmp, "trunc.gguf")
    with open(MODEL, "rb") as f, open(trunc, "wb") as g:
        g.write(f.read(4096))
    expect_error("truncated model", ["run", "-m", trunc, "-p", "x"], "trunc.gguf")
    arch = os.path.join(tmp, "arch.gguf")
    with open(arch, "wb") as f:
        f.write(gguf_header("mamba"))
    expect_error("unknown architecture", ["run", "-m", arch, "-p", "x"], "unsupported architecture")
    expect_error("unknown kv policy", ["run", "-m", MODEL, "-p", "x", "--kv", "magic"], "unknown KV policy")
    expect_error("prompt longer than context", ["run", "-m", MODEL, "-p", "word " * 300, "-c", "64"], "context")
    expect_error("bad flag", ["run", "--bogus-flag"], "bogus")
    expect_error("bad number", ["run", "-m", MODEL, "-p", "x", "-n", "many"], "many")
    expect_error("no prompt", ["run", "-m", MODEL], "-p")
    badjson = os.path.join(tmp, "bad.jsonl")
    with open(badjson, "w") as f:
        f.write('{"prompt": "ok"}\n{"prompt": \n')
    expect_error("bad JSONL in batch file", ["run", "-m", MODEL, "--batch-file", badjson], "JSON")
    expect_error("bad token id", ["logits", "-m", MODEL, "--tokens", "1,x", "--out", os.path.join(tmp, "l.bin")], "token")
    expect_error("token id out of range", ["logits", "-m", MODEL, "--tokens", "2,99999999", "--out",
                                           os.path.join(tmp, "l.bin")], "out of range")
    expect_error("bad shadowkv budget", ["run", "-m", MODEL, "-p", "x", "--kv", "shadowkv", "--budget", "lots"], "budget")
    return finish()


def model_names(tmp):
    models = os.path.join(tmp, "models")
    os.makedirs(models)
    os.symlink(os.path.abspath(MODEL), os.path.join(models, "gemma-3-270m-q4_k_m.gguf"))
    env = dict(os.environ, SHADOWKV_MODELS=models)
    rc, out, err = run(["models", "--json"], env=env)
    try:
        listed = {m["name"]: m for m in json.loads(out)}
    except (ValueError, KeyError, TypeError):
        listed = {}
    g, q = listed.get("gemma3-270m", {}), listed.get("qwen2.5-coder-0.5b", {})
    check("models lists both names, default first", rc == 0 and list(listed)[:2] == ["gemma3-270m", "qwen2.5-coder-0.5b"]
          and g.get("default") is True, out[:200])
    check("models: fetched state, path and size", g.get("fetched") is True and q.get("fetched") is False and
          g.get("path") == os.path.join(models, "gemma-3-270m-q4_k_m.gguf") and g.get("bytes") == os.path.getsize(MODEL)
          and q.get("bytes") == 491400064, json.dumps([g, q])[:300])
    rc, out, err = run(["models"], env=env)
    check("models (text) names the fetch command", rc == 0 and "scripts/fetch-model qwen2.5-coder-0.5b" in out, out[:300])
    rc, out, err = run(["run", "-m", "gemma3-270m", "-p", "Question: What is the capital of France?\nAnswer:", "-n", "4",
                        "--temp", "0"], env=env)
    check("run -m NAME uses $SHADOWKV_MODELS/<file>", rc == 0 and "Paris" in out, repr(out[:80]) + err[-200:])
    rc, out, err = run(["inspect", "gemma3-270m"], env=env)
    check("inspect NAME", rc == 0 and "gemma3" in out, err[-200:])
    rc, out, err = run(["tokenize", "-m", "gemma3-270m", "-p", "hi"], env=env)
    check("tokenize -m NAME", rc == 0 and out.split()[:1] == ["2"], out + err[-200:])
    expect_error("unfetched model name", ["run", "-m", "qwen2.5-coder-0.5b", "-p", "x"],
                 "scripts/fetch-model qwen2.5-coder-0.5b", env)
    expect_error("unknown model name", ["run", "-m", "no-such-model", "-p", "x"], "qwen2.5-coder-0.5b", env)
    empty = dict(os.environ, SHADOWKV_MODELS=os.path.join(tmp, "nowhere"))
    expect_error("default model not fetched", ["run", "-p", "x"], "scripts/fetch-model gemma3-270m", empty)


def finish():
    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
