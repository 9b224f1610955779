#!/usr/bin/env python3
"""Resource limits and determinism on the real default model (SHADOWKV_MODEL, SHADOWKV_BIN), issue 13 parts 3-4.

Limits: GGUFs whose declared sizes would need more memory than any machine has (a 2^62-element metadata array, a
2^60-byte string, a tensor of 2^31 x 2^31 elements) are one-line errors without allocating; a 10-million-character
prompt is tokenized and rejected as longer than the context (bounded time and memory); `-n` of a billion stops at
the context (`-c 48`); `-c` above the model's limit, `-t 1000` and `-t -1` are errors; `-t 0` means all cores.
Determinism: greedy decoding gives the same tokens run after run and with `-t 1` and `-t 2`, for `full` and
`shadowkv`; sampling with the same seed gives the same tokens twice, another seed other tokens.
Prints "N passed, M failed".
"""
import json
import os
import random
import resource
import struct
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("SHADOWKV_BIN", "")
MODEL = os.environ.get("SHADOWKV_MODEL", "")
passed = failed = 0


def check(what, cond, detail=""):
    global passed, failed
    passed, failed = (passed + 1, failed) if cond else (passed, failed + 1)
    print(f"{'PASS' if cond else 'FAIL'} {what} {detail}")


def run(args, timeout=600):
    t0 = time.time()
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout)
    return p, time.time() - t0


def expect_error(what, args, word, max_seconds=60):
    p, dt = run(args)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    ok = p.returncode == 1 and lines and lines[-1].startswith("error:") and word in lines[-1] and dt < max_seconds
    check(what, ok, f"[exit {p.returncode}, {dt:.1f}s] {lines[-1] if lines else '(no stderr)'}")


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def huge_ggufs(tmp):
    files = {
        "metadata array of 2^62 elements": b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gguf_string("general.big")
        + struct.pack("<IIQ", 9, 0, 1 << 62),
        "string of 2^60 bytes": b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 60) + b"abc",
        "tensor of 2^31 x 2^31 elements": b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + gguf_string("general.architecture")
        + struct.pack("<I", 8) + gguf_string("llama") + gguf_string("token_embd.weight")
        + struct.pack("<IQQIQ", 2, 1 << 31, 1 << 31, 0, 0),
        "tensor count of 2^63": b"GGUF" + struct.pack("<IQQ", 3, 1 << 63, 0),
    }
    out = {}
    for i, (what, data) in enumerate(files.items()):
        path = os.path.join(tmp, f"huge{i}.gguf")
        open(path, "wb").write(data + b"\0" * 64)
        out[what] = path
    return out


def tokens_of(args):
    p, _ = run(args + ["--json"])
    return json.loads(p.stdout)["text"] if p.returncode == 0 else None


def main():
    if not BIN or not os.path.exists(BIN) or not MODEL or not os.path.exists(MODEL):
        print(f"SHADOWKV_BIN / SHADOWKV_MODEL missing: '{BIN}', '{MODEL}' (scripts/test fetches the model)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for what, path in huge_ggufs(tmp).items():
            expect_error(f"GGUF with a {what}: inspect", ["inspect", path], path, 10)
            expect_error(f"GGUF with a {what}: run", ["run", "-m", path, "-p", "x"], path, 10)
        big = os.path.join(tmp, "big.txt")
        rng = random.Random(1)
        words = ["the", "engine", "reads", "long", "prompts", "quickly", "and", "fails", "cleanly", "when", "needed"]
        with open(big, "w") as f:
            f.write(" ".join(rng.choice(words) for _ in range(1_700_000))[:10_000_000])
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        expect_error("10-million-character prompt", ["run", "-m", MODEL, "-f", big, "-n", "1"], "more than the context", 300)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        check("10-million-character prompt stays within 4 GiB", max(peak, before) < 4 << 20, f"peak RSS {peak >> 10} MiB")
    p, dt = run(["run", "-m", MODEL, "-p", "Once upon a time", "-c", "48", "-n", "1000000000", "--temp", "0", "--json"])
    out = json.loads(p.stdout) if p.returncode == 0 else {}
    check("-n of a billion stops at the context", out.get("stop_reason") == "context" and dt < 120,
          f"[{dt:.1f}s] {out.get('stop_reason')}, {out.get('stats', {}).get('generated_tokens')} tokens")
    expect_error("-c above the model's limit", ["run", "-m", MODEL, "-p", "x", "-c", "100000000"], "more than the model")
    expect_error("-t 1000", ["run", "-m", MODEL, "-p", "x", "-t", "1000"], "threads per core")
    expect_error("-t -1", ["run", "-m", MODEL, "-p", "x", "-t", "-1"], "-t")
    p, _ = run(["run", "-m", MODEL, "-p", "x", "-n", "2", "-t", "0"])
    check("-t 0 means all cores", p.returncode == 0, p.stderr.strip().splitlines()[-1] if p.returncode else "")

    prompt = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"limits-prompt-{os.getpid()}.txt")
    # ~5K tokens: past 4096 keys decode attention is split into parts (by row count, not by threads)
    open(prompt, "w").write(open("/usr/share/common-licenses/GPL-3").read()[:22000])
    try:
        for kv in (["--kv", "full"], ["--kv", "shadowkv", "--budget", "256"]):
            base = ["run", "-m", MODEL, "-f", prompt, "-n", "24", "--temp", "0"] + kv
            a, b = tokens_of(base + ["-t", "2"]), tokens_of(base + ["-t", "2"])
            c = tokens_of(base + ["-t", "1"])
            check(f"greedy {kv[1]}: same text run after run", a is not None and a == b, repr(a))
            check(f"greedy {kv[1]}: same text with -t 1 and -t 2", a is not None and a == c, repr(c))
        # Bit-exact logits of the prompt's last position and 8 decode steps, -t 1 vs -t 2.
        p, _ = run(["tokenize", "-m", MODEL, "-f", prompt])
        ids = ",".join(p.stdout.split())
        n_ids = len(p.stdout.split())
        for kv in (["--kv", "full"], ["--kv", "shadowkv", "--budget", "256"]):
            blobs = []
            for t in ("1", "2"):
                out = f"{prompt}.{t}.bin"
                q, _ = run(["logits", "-m", MODEL, "--tokens", ids, "--prompt-tokens", str(n_ids - 8), "--out", out,
                            "-t", t] + kv)
                blobs.append(open(out, "rb").read() if q.returncode == 0 else None)
                if os.path.exists(out):
                    os.unlink(out)
            check(f"{kv[1]}: logits bit-identical with -t 1 and -t 2 ({n_ids} tokens, 8 decode steps)",
                  blobs[0] is not None and blobs[0] == blobs[1], f"{len(blobs[0] or b'')} bytes")
        sampled = ["run", "-m", MODEL, "-p", "Once upon a time", "-n", "24", "--temp", "0.9"]
        s1, s2 = tokens_of(sampled + ["--seed", "7"]), tokens_of(sampled + ["--seed", "7", "-t", "1"])
        s3 = tokens_of(sampled + ["--seed", "8"])
        check("sampling: the same seed gives the same text (also at -t 1)", s1 is not None and s1 == s2, repr(s1))
        check("sampling: another seed gives other text", s3 is not None and s3 != s1, repr(s3))
    finally:
        os.unlink(prompt)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
