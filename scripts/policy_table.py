#!/usr/bin/env python3
"""Markdown table of KV policies side by side from a `shadowkv eval` output directory (results.jsonl).

Usage: scripts/policy_table.py EVAL_OUT_DIR [--reference full] [--order LABEL,LABEL,...]
One row per policy label: tail perplexity of austen_ppl (and its change against the reference), per-row KL median /
p95 and top-1 agreement against the reference over the scored tail, the mean NIAH score over the other tasks' cells
(with the number of cells), and KV bytes per sequence at the end of the ppl document (hot + cold, and total / the
reference's). Rows follow --order (default: run.json's policies).
"""
import json
import os
import sys
from collections import defaultdict


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    out = sys.argv[1]
    ref = sys.argv[sys.argv.index("--reference") + 1] if "--reference" in sys.argv else "full"
    recs = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.strip()]
    order = list(json.load(open(os.path.join(out, "run.json")))["policies"])
    if "--order" in sys.argv:
        order = sys.argv[sys.argv.index("--order") + 1].split(",")
    ppl = {r["policy"]: r for r in recs if r["task"] == "austen_ppl"}
    niah = defaultdict(list)
    for r in recs:
        if r["task"] != "austen_ppl":
            niah[r["policy"]].append(r["score"])
    ref_ppl = ppl.get(ref, {}).get("score")
    ref_kv = ppl.get(ref, {}).get("kv_bytes")
    mib = lambda b: f"{b / 2**20:.1f}"
    rows = ["| policy | settings | tail ppl | vs full | KL median | KL p95 | top-1 % | NIAH (cells) | KV hot + cold MiB | KV / full |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label in order:
        p = ppl.get(label)
        n = niah.get(label, [])
        cells = [label, f"`{p['policy_args']}`" if p and p.get("policy_args") else "defaults"]
        if p:
            f = p.get("fidelity") or {}
            cells += [f"{p['score']:.3f}", f"{100 * (p['score'] / ref_ppl - 1):+.2f}%" if ref_ppl else "",
                      f"{f['kl_median']:.4f}" if "kl_median" in f else "-", f"{f['kl_p95']:.4f}" if "kl_p95" in f else "-",
                      f"{100 * f['top1']:.1f}" if "top1" in f else "-",
                      f"{100 * sum(n) / len(n):.0f} ({len(n)})" if n else "-",
                      f"{mib(p['kv_hot_bytes'])} + {mib(p['kv_cold_bytes'])}",
                      f"{p['kv_bytes'] / ref_kv:.2f}" if ref_kv else ""]
        else:
            cells += ["-"] * 5 + [f"{100 * sum(n) / len(n):.0f} ({len(n)})" if n else "-", "-", "-"]
        rows.append("| " + " | ".join(cells) + " |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
