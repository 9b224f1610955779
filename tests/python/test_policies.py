#!/usr/bin/env python3
"""Every KV policy of the registry on the real default model (SHADOWKV_MODEL, SHADOWKV_BIN), issue 11.

- `shadowkv policies --json` lists exactly the expected policy names, each setting with a type, default and help;
- `run --json` on the same ~4K-token prompt (GPL-3 text, greedy, 8 tokens) for every policy at its defaults:
  every policy but `full` holds fewer KV bytes than `full`, reports KV stats, and generates text;
- one `bench` and one `eval` call over all policies together: every policy has its rows (no policy-specific code
  is needed to run it anywhere);
- paged allocation: a batch of prompts of different lengths with `full --paged` gives the same greedy texts as
  `full`, reserves fewer bytes, reports blocks and fragmentation, and gives every block back to the shared pool;
- a setting the policy does not declare, and an unknown policy, are clear errors (non-zero exit).
Policies are taken from the registry, so a new policy is tested here without editing this file.
Prints "N passed, M failed".
"""
import json
import os
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("SHADOWKV_BIN", "")
MODEL = os.environ.get("SHADOWKV_MODEL", "")
EXPECTED = {"full", "shadowkv", "streaming", "h2o", "snapkv", "pyramidkv", "quest", "kivi", "q8", "q4"}
PROMPT_TOKENS = 4096

passed = failed = 0


def check(cond, what):
    global passed, failed
    passed, failed = (passed + 1, failed) if cond else (passed, failed + 1)
    print(f"{'ok  ' if cond else 'FAIL'} {what}")
    return cond


def run(args, timeout=900):
    t0 = time.time()
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout)
    print(f"$ shadowkv {' '.join(args)}  [{time.time() - t0:.1f}s, exit {p.returncode}]")
    if p.returncode != 0:
        print(p.stderr[-2000:])
    return p


def prompt_file(tmp):
    """GPL-3 text cut to about PROMPT_TOKENS tokens (counted with the model's tokenizer)."""
    text = open("/usr/share/common-licenses/GPL-3").read()
    lo, hi = 1000, len(text)
    while hi - lo > 200:  # bisection on characters
        mid = (lo + hi) // 2
        path = os.path.join(tmp, "probe.txt")
        open(path, "w").write(text[:mid])
        n = len(run(["tokenize", "-m", MODEL, "-f", path]).stdout.split())
        lo, hi = (mid, hi) if n <= PROMPT_TOKENS else (lo, mid)
    path = os.path.join(tmp, "prompt.txt")
    open(path, "w").write(text[:lo])
    return path


def paged_batch(tmp, prompt):
    """Paged allocation: a batch of three prompts of different lengths, `full` with and without --paged."""
    text = open(prompt).read()
    batch = os.path.join(tmp, "batch.jsonl")
    with open(batch, "w") as f:
        for chars in (1500, 6000, len(text)):
            f.write(json.dumps({"prompt": text[:chars]}) + "\n")
    out = {}
    # Default 128-token blocks: the prefill kernel's key blocks are the same as without paging, so the outputs are
    # too (smaller blocks change only float rounding: mean NLL within 1e-7, but a near tie may flip a token).
    for label, extra in (("flat", []), ("paged", ["--paged"])):
        p = run(["run", "-m", MODEL, "--batch-file", batch, "-n", "8", "--temp", "0", "--kv", "full", "--json"] + extra)
        if check(p.returncode == 0, f"full {label}: run --batch-file succeeds"):
            out[label] = json.loads(p.stdout)
    if len(out) < 2:
        return
    flat, paged = out["flat"]["results"], out["paged"]["results"]
    check([r["text"] for r in flat] == [r["text"] for r in paged], "--paged generates the same greedy texts")
    reserved = {k: sum(r["stats"]["global_reserved_bytes"] for r in v["results"]) for k, v in out.items()}
    used = sum(r["stats"]["kv_parts"]["global_layers"] for r in paged)
    check(used <= reserved["paged"] < reserved["flat"],
          f"paged reserves {reserved['paged']} bytes for {used} in use, less than contiguous {reserved['flat']}")
    frag = [r["stats"]["global_fragmentation"] for r in paged]
    bound = [128 / (r["stats"]["prompt_tokens"] + r["stats"]["generated_tokens"]) for r in paged]
    check(all(0 <= f < b for f, b in zip(frag, bound)) and all("kv_blocks" in r["stats"] for r in paged),
          f"paged fragmentation per sequence {frag} under one block's share {bound}, blocks reported")
    pool = out["paged"].get("block_pool", {})
    blocks = sum(r["stats"]["kv_blocks"] for r in paged)
    check(pool.get("blocks", 0) >= blocks and pool.get("blocks_in_use", -1) == 0,
          f"the shared pool allocated {pool.get('blocks')} blocks for the batch's {blocks}; all returned at the end")


def main():
    if not BIN or not os.path.exists(BIN) or not MODEL or not os.path.exists(MODEL):
        print(f"SHADOWKV_BIN / SHADOWKV_MODEL missing: '{BIN}', '{MODEL}' (scripts/test fetches the model)")
        return 1
    p = run(["policies", "--json"])
    decls = json.loads(p.stdout) if p.returncode == 0 else []
    names = [d["name"] for d in decls]
    check(set(names) == EXPECTED and len(names) == len(EXPECTED), f"policies lists exactly {sorted(EXPECTED)}: {names}")
    check(all(s["type"] in ("int", "real", "text", "flag") and s["help"] for d in decls for s in d["settings"]),
          "every setting has a type and help text")
    text_listing = run(["policies"]).stdout
    check(all(n in text_listing for n in names), "the text listing names every policy")

    with tempfile.TemporaryDirectory() as tmp:
        prompt = prompt_file(tmp)
        stats = {}
        for name in names:
            p = run(["run", "-m", MODEL, "-f", prompt, "-n", "8", "--temp", "0", "--kv", name, "--json"])
            if check(p.returncode == 0, f"{name}: run --json succeeds"):
                out = json.loads(p.stdout)
                stats[name] = out["stats"]
                check(out["text"].strip() != "", f"{name}: generates text ({out['text'][:40]!r})")
        full = stats.get("full", {}).get("kv_bytes", 0)
        check(full > 0 and stats["full"]["prompt_tokens"] > PROMPT_TOKENS * 0.9,
              f"full holds {full} bytes for a {stats.get('full', {}).get('prompt_tokens')}-token prompt")
        for name, s in stats.items():
            if name != "full":
                check(0 < s["kv_bytes"] < full, f"{name}: {s['kv_bytes']} KV bytes < full's {full}")

        everything = ",".join(names)
        out = os.path.join(tmp, "bench")
        p = run(["bench", "-m", MODEL, "--lengths", "768", "--batch", "1", "--kv", everything, "--decode-tokens", "4",
                 "--out", out])
        if check(p.returncode == 0, "bench runs every policy in one call"):
            rows = json.load(open(os.path.join(out, "bench.json")))["runs"]
            check({r["policy"] for r in rows} == set(names), "bench.json has rows for every policy")
        out = os.path.join(tmp, "eval")
        p = run(["eval", "-m", MODEL, "--tasks", "niah_single_1", "--lengths", "768", "--samples", "1", "--kv",
                 everything, "--out", out])
        if check(p.returncode == 0, "eval runs every policy in one call"):
            recs = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.strip()]
            check({r["policy"] for r in recs} == set(names), "results.jsonl has a record for every policy")
            spec = json.load(open(os.path.join(out, "run.json")))["policies"]
            check(all(set(spec[n]["settings"]) == {s["name"] for s in d["settings"]} for n, d in zip(names, decls)),
                  "run.json records every declared setting of every policy")

        paged_batch(tmp, prompt)

    p = run(["run", "-m", MODEL, "-p", "x", "--kv", "full", "--budget", "64"])
    check(p.returncode != 0 and "no setting --budget" in p.stderr, "a setting full does not declare is an error")
    p = run(["run", "-m", MODEL, "-p", "x", "--kv", "nonesuch"])
    check(p.returncode != 0 and "unknown KV policy" in p.stderr and "shadowkv" in p.stderr,
          "an unknown policy is an error that lists the known ones")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
