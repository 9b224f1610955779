#!/usr/bin/env python3
"""scripts/policy_table.py on a small eval output written here: every column computed from the records (ratios,
decode tok/s, NIAH means), rows in --order, and the SVG plot holding one point per policy with a KL."""
import json
import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("SHADOWKV_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(SRC, "scripts", "policy_table.py")


def record(policy, task, score, kv, fidelity=None, args="", seconds=4.0):
    return {"policy": policy, "task": task, "score": score, "kv_bytes": kv, "kv_hot_bytes": kv - kv // 4,
            "kv_cold_bytes": kv // 4, "fidelity": fidelity, "policy_args": args, "length": 8192,
            "scored_tokens": 512, "decode_seconds": seconds}


def main():
    with tempfile.TemporaryDirectory() as d:
        check(d)


def check(d):
    recs = [record("full", "austen_ppl", 20.0, 2 << 20, seconds=8.0),
            record("shadowkv", "austen_ppl", 21.0, 1 << 20, {"kl_median": 0.02, "kl_p95": 0.1, "top1": 0.9}),
            record("q8", "austen_ppl", 20.2, 1 << 19, {"kl_median": 0.004, "kl_p95": 0.01, "top1": 0.95}, "--x 1"),
            record("q8", "niah_single_1", 1.0, 0), record("q8", "niah_single_2", 0.5, 0)]
    with open(os.path.join(d, "results.jsonl"), "w") as f:
        f.write("\n".join(json.dumps(r) for r in recs) + "\n")
    json.dump({"policies": ["full", "shadowkv", "q8"]}, open(os.path.join(d, "run.json"), "w"))
    svg = os.path.join(d, "plot.svg")
    out = subprocess.run([sys.executable, SCRIPT, d, "--order", "q8,full,shadowkv", "--svg", svg], check=True,
                         capture_output=True, text=True).stdout
    rows = [l for l in out.splitlines() if l.startswith("| ") and not l.startswith("| policy")]
    assert [r.split("|")[1].strip() for r in rows] == ["q8", "full", "shadowkv"], out
    q8 = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert q8 == ["q8", "`--x 1`", "20.200", "+1.00%", "0.0040", "0.0100", "95.0", "75 (2)", "0.4 + 0.1", "0.25",
                  "128.0"], q8
    full = [c.strip() for c in rows[1].split("|")[1:-1]]
    assert full[3] == "+0.00%" and full[4] == "-" and full[-1] == "64.0", full
    sk = [c.strip() for c in rows[2].split("|")[1:-1]]
    assert sk[3] == "+5.00%" and sk[-2] == "0.50", sk
    text = open(svg).read()
    assert text.startswith("<svg") and text.count("<circle") == 2, text
    assert ">shadowkv</text>" in text and ">q8</text>" in text and ">full</text>" not in text, text
    print("policy_table: ok")


if __name__ == "__main__":
    main()
