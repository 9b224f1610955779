#!/usr/bin/env python3
"""End-to-end test of `shadowkv eval` and `shadowkv bench` on the real model (SHADOWKV_MODEL, SHADOWKV_BIN).

Passkey retrieval (niah_single_1) at 2048 and 4096 tokens, 2 samples, policies `full` and the harness's
test-only `truncate:16` (keeps only the last 16 positions, so it cannot see the needle): full must find the
passkey, the broken policy must score visibly worse, every output file must exist and parse, and a second run
must resume (skip every finished cell). Then a small `bench` run. Prints "N passed, M failed".
SHADOWKV_E2E_LENGTHS overrides the lengths (e.g. "512,1024" for a quick local check).
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

BIN = os.environ.get("SHADOWKV_BIN", "")
MODEL = os.environ.get("SHADOWKV_MODEL", "")
LENGTHS = os.environ.get("SHADOWKV_E2E_LENGTHS", "2048,4096")

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}")
    return cond


def run(args, timeout):
    t0 = time.time()
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout)
    dt = time.time() - t0
    print(f"$ shadowkv {' '.join(args)}  [{dt:.1f}s, exit {p.returncode}]")
    if p.returncode != 0:
        print(p.stdout[-3000:])
        print(p.stderr[-3000:])
    return p, dt


def parses_as_svg(path):
    try:
        root = ET.parse(path).getroot()
        return root.tag.endswith("svg")
    except Exception as e:  # noqa: BLE001
        print(f"  {path}: {e}")
        return False


def main():
    if not BIN or not os.path.exists(BIN):
        print(f"SHADOWKV_BIN is not set or missing: '{BIN}'")
        print("0 passed, 1 failed")
        return 1
    if not MODEL or not os.path.exists(MODEL):
        print(f"SHADOWKV_MODEL is not set or missing: '{MODEL}'")
        print("0 passed, 1 failed")
        return 1
    lengths = [int(x) for x in LENGTHS.split(",")]
    tmp = tempfile.mkdtemp(prefix="skv_eval_e2e_")
    out = os.path.join(tmp, "eval")
    eval_args = ["eval", "-m", MODEL, "--tasks", "niah_single_1", "--lengths", LENGTHS, "--kv", "full,truncate:16",
                 "--samples", "2", "--seed", "7", "--max-new", "24", "--fidelity-steps", "8", "--depths", "25,75",
                 "--min-full-score", "0.5", "--out", out]
    p, _ = run(eval_args, timeout=1800)
    check(p.returncode == 0, "eval exits 0")

    res = os.path.join(out, "results.jsonl")
    recs = []
    if check(os.path.exists(res), "results.jsonl exists"):
        with open(res) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        try:
            recs = [json.loads(l) for l in lines]
            check(True, "results.jsonl lines parse as JSON")
        except json.JSONDecodeError as e:
            check(False, f"results.jsonl lines parse as JSON ({e})")
        check(len(recs) == 2 * 2 * len(lengths), f"one record per cell ({len(recs)} of {4 * len(lengths)})")

    full = [r for r in recs if r["policy"] == "full"]
    trunc = [r for r in recs if r["policy"] == "truncate:16"]
    for r in recs:
        print(f"  {r['policy']:12s} L={r['length']} #{r['sample']} depth={r['depth']} score={r['score']} "
              f"answer={r['answers']} output={r['output'][:50]!r}")
    full_mean = sum(r["score"] for r in full) / max(1, len(full))
    trunc_mean = sum(r["score"] for r in trunc) / max(1, len(trunc))
    check(len(full) > 0 and full_mean >= 0.75, f"full finds the passkey (mean score {full_mean:.2f})")
    check(len(trunc) > 0 and trunc_mean <= full_mean - 0.5,
          f"truncate:16 scores visibly worse ({trunc_mean:.2f} vs {full_mean:.2f})")
    for r in recs:
        if abs(r["prompt_tokens"] + r["max_new"] - r["length"]) > max(16, r["length"] // 100):
            check(False, f"prompt length fits the target ({r['prompt_tokens']} + {r['max_new']} vs {r['length']})")
            break
    else:
        check(len(recs) > 0, "prompt lengths fit their targets")
    fid = [r.get("fidelity") for r in trunc]
    check(all(f and f["steps"] > 0 and f["kl_mean"] > 0.01 and 0 <= f["top1"] <= 1 for f in fid) and len(fid) > 0,
          "truncate:16 has fidelity figures against full (KL > 0)")
    check(all(r.get("fidelity") is None for r in full), "full has no self-comparison")
    check(all(r["kv_bytes"] < r["kv_full_bytes"] for r in trunc), "truncate:16 holds less KV than full would")

    try:
        with open(os.path.join(out, "summary.csv")) as f:
            rows = list(csv.DictReader(f))
        check(len(rows) == 2 * len(lengths) and {"task", "length", "policy", "score", "kl_mean"} <= set(rows[0]),
              "summary.csv parses with the expected columns")
    except Exception as e:  # noqa: BLE001
        check(False, f"summary.csv parses ({e})")
    try:
        with open(os.path.join(out, "summary.json")) as f:
            sj = json.load(f)
        check(sj["reference"] == "full" and len(sj["cells"]) == 2 * len(lengths), "summary.json parses")
    except Exception as e:  # noqa: BLE001
        check(False, f"summary.json parses ({e})")
    md = open(os.path.join(out, "summary.md")).read() if os.path.exists(os.path.join(out, "summary.md")) else ""
    check("| niah_single_1 |" in md and "truncate:16" in md, "summary.md has the task x policy table")
    for pol in ("full", "truncate_16"):
        path = os.path.join(out, f"heatmap_{pol}_niah_single_1.svg")
        check(os.path.exists(path) and parses_as_svg(path), f"heatmap for {pol} exists and is well-formed XML")
    try:
        with open(os.path.join(out, "calibration.json")) as f:
            cal = json.load(f)
        check(cal["threshold"] == 0.5 and len(cal["kept"]) + len(cal["dropped"]) == len(lengths),
              "calibration.json lists every (task, length) cell of full")
    except Exception as e:  # noqa: BLE001
        check(False, f"calibration.json parses ({e})")

    # Resume: the same command again has nothing left to do.
    p2, dt2 = run(eval_args, timeout=600)
    with open(res) as f:
        n2 = len([l for l in f.read().splitlines() if l.strip()])
    check(p2.returncode == 0 and "resuming" in p2.stderr and n2 == len(recs),
          f"a second run resumes and adds no records ({n2} lines, {dt2:.1f}s)")

    # scripts/calibrate: a task full drops at one length is not run at the next; a kept one is.
    script = os.path.join(os.environ.get("SHADOWKV_SOURCE_DIR", ""), "scripts", "calibrate")
    for min_score, name in (("1.01", "none kept"), ("0", "all kept")):
        cdir = os.path.join(tmp, "cal-" + min_score)
        env = dict(os.environ, SHADOWKV_MODEL=MODEL, MIN_SCORE=min_score, TASKS="niah_single_1,niah_single_2")
        t0 = time.time()
        pc = subprocess.run([script, cdir, "256:1", "512:2"], capture_output=True, text=True, timeout=600, env=env)
        print(f"$ MIN_SCORE={min_score} scripts/calibrate {cdir} 256:1 512:2  [{time.time() - t0:.1f}s, "
              f"exit {pc.returncode}]")
        if pc.returncode != 0:
            print(pc.stdout[-2000:], pc.stderr[-2000:])
        try:
            with open(os.path.join(cdir, "calibration.json")) as f:
                cal = json.load(f)
            cells = lambda key: sorted((c["task"], c["length"]) for c in cal[key])  # noqa: E731
            both = [("niah_single_1", 256), ("niah_single_2", 256)]
            if min_score == "0":
                ok = cells("kept") == sorted(both + [("niah_single_1", 512), ("niah_single_2", 512)]) and \
                    not cal["not_run"] and [c["n"] for c in cal["kept"] if c["length"] == 512] == [2, 2]
            else:
                ok = cells("dropped") == both and not cal["kept"] and \
                    cells("not_run") == [("niah_single_1", 512), ("niah_single_2", 512)]
            ok = ok and cal["plan"] == [{"length": 256, "samples": 1}, {"length": 512, "samples": 2}]
            check(pc.returncode == 0 and ok, f"scripts/calibrate prunes by length ({name})")
        except Exception as e:  # noqa: BLE001
            check(False, f"scripts/calibrate writes calibration.json ({name}: {e})")
    # A time budget stops starting tasks once used up; the cells left are listed with that reason.
    env = dict(os.environ, SHADOWKV_MODEL=MODEL, MIN_SCORE="0", TIME_BUDGET="1", TASKS="niah_single_1,niah_single_2")
    cdir = os.path.join(tmp, "cal-budget")
    pt = subprocess.run([script, cdir, "256:1", "512:1"], capture_output=True, text=True, timeout=600, env=env)
    try:
        with open(os.path.join(cdir, "calibration.json")) as f:
            cal = json.load(f)
        ok = [(c["task"], c["length"]) for c in cal["kept"]] == [("niah_single_1", 256)] and \
            sorted((c["task"], c["length"], c["why"]) for c in cal["not_run"]) == [
                ("niah_single_1", 512, "time budget used up"), ("niah_single_2", 256, "time budget used up"),
                ("niah_single_2", 512, "time budget used up")]
        check(pt.returncode == 0 and ok, "scripts/calibrate stops starting tasks when TIME_BUDGET is used up")
    except Exception as e:  # noqa: BLE001
        check(False, f"scripts/calibrate with TIME_BUDGET writes calibration.json ({e})")
    pb = subprocess.run([script, os.path.join(tmp, "cal-bad"), "512"], capture_output=True, text=True, timeout=60,
                        env=dict(os.environ, SHADOWKV_MODEL=MODEL))
    check(pb.returncode == 2 and "LENGTH:SAMPLES" in pb.stderr, "scripts/calibrate rejects a bad plan step")

    # Bench: two policies, batches 1 and 2, side by side.
    bout = os.path.join(tmp, "bench")
    p3, _ = run(["bench", "-m", MODEL, "--lengths", str(lengths[0]), "--batch", "1,2", "--kv", "full,truncate:16",
                 "--decode-tokens", "4", "--out", bout], timeout=1200)
    check(p3.returncode == 0, "bench exits 0")
    try:
        with open(os.path.join(bout, "bench.json")) as f:
            bj = json.load(f)
        runs = bj["runs"]
        check(len(runs) == 4 and "clone" in bj["note"], "bench.json has 4 runs and says the cache is cloned")
        check(all(r["decode_tok_s_total"] > 0 and r["prefill_tok_s"] > 0 and r["peak_rss_decode_bytes"] > 0
                  for r in runs), "bench figures are positive")
        t = [r for r in runs if r["policy"] == "truncate:16"]
        check(all(r["ratio_to_full"]["kv_bytes"] < 1 for r in t), "bench reports KV ratios to full")
        check("| full |" in p3.stdout, "bench prints a markdown table")
    except Exception as e:  # noqa: BLE001
        check(False, f"bench.json parses ({e})")
    check(parses_as_svg(os.path.join(bout, "bench.svg")), "bench.svg is well-formed XML")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
