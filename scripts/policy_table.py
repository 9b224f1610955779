#!/usr/bin/env python3
"""Markdown table (and an SVG plot) of KV policies side by side from a `shadowkv eval` output directory.

Usage: scripts/policy_table.py EVAL_OUT_DIR [--reference full] [--order LABEL,LABEL,...] [--svg FILE]
One row per policy label: tail perplexity of austen_ppl (and its change against the reference), per-row KL median /
p95 and top-1 agreement against the reference over the scored tail, the mean NIAH score over the other tasks' cells
(with the number of cells), KV bytes per sequence at the end of the ppl document (hot + cold, and total / the
reference's) and decode tok/s: the scored tail's one-token steps (batch 1, after the prompt) per second of their
wall time, so only comparable between rows of one run on a quiet machine. Rows follow --order (default: run.json's
policies). --svg writes KL median (log scale) against KV bytes / reference, one labelled point per policy.
"""
import json
import math
import os
import sys
from collections import defaultdict


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def load(out):
    recs = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.strip()]
    order = list(json.load(open(os.path.join(out, "run.json")))["policies"])
    ppl = {r["policy"]: r for r in recs if r["task"] == "austen_ppl"}
    niah = defaultdict(list)
    for r in recs:
        if r["task"] != "austen_ppl":
            niah[r["policy"]].append(r["score"])
    return order, ppl, niah


def decode_tok_s(p):
    return p["scored_tokens"] / p["decode_seconds"] if p.get("decode_seconds") and p.get("scored_tokens") else None


def table(order, ppl, niah, ref):
    ref_ppl = ppl.get(ref, {}).get("score")
    ref_kv = ppl.get(ref, {}).get("kv_bytes")
    mib = lambda b: f"{b / 2**20:.1f}"
    rows = ["| policy | settings | tail ppl | vs full | KL median | KL p95 | top-1 % | NIAH (cells) | "
            "KV hot + cold MiB | KV / full | decode tok/s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label in order:
        p = ppl.get(label)
        n = niah.get(label, [])
        nia = f"{100 * sum(n) / len(n):.0f} ({len(n)})" if n else "-"
        cells = [label, f"`{p['policy_args']}`" if p and p.get("policy_args") else "defaults"]
        if p:
            f = p.get("fidelity") or {}
            tps = decode_tok_s(p)
            cells += [f"{p['score']:.3f}", f"{100 * (p['score'] / ref_ppl - 1):+.2f}%" if ref_ppl else "",
                      f"{f['kl_median']:.4f}" if "kl_median" in f else "-",
                      f"{f['kl_p95']:.4f}" if "kl_p95" in f else "-",
                      f"{100 * f['top1']:.1f}" if "top1" in f else "-", nia,
                      f"{mib(p['kv_hot_bytes'])} + {mib(p['kv_cold_bytes'])}",
                      f"{p['kv_bytes'] / ref_kv:.2f}" if ref_kv else "", f"{tps:.1f}" if tps else "-"]
        else:
            cells += ["-"] * 5 + [nia, "-", "-", "-"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def svg_plot(order, ppl, ref, title):
    """KL median (log10 y) against KV bytes / reference (x), one labelled point per policy with a KL."""
    ref_kv = ppl.get(ref, {}).get("kv_bytes")
    pts = []
    for label in order:
        p = ppl.get(label)
        kl = ((p or {}).get("fidelity") or {}).get("kl_median")
        if p and kl and kl > 0 and ref_kv:
            pts.append((label, p["kv_bytes"] / ref_kv, math.log10(kl)))
    w, h, l, r, t, b = 640, 420, 70, 20, 40, 50
    ylo = math.floor(min([y for _, _, y in pts] + [-2]))
    yhi = math.ceil(max([y for _, _, y in pts] + [-1]))
    sx = lambda x: l + (w - l - r) * min(max(x, 0.0), 1.2) / 1.2
    sy = lambda y: t + (h - t - b) * (yhi - y) / (yhi - ylo)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{l}" y1="{h - b}" x2="{w - r}" y2="{h - b}" stroke="black"/>',
           f'<line x1="{l}" y1="{t}" x2="{l}" y2="{h - b}" stroke="black"/>',
           f'<text x="{(l + w - r) / 2}" y="{h - 12}" text-anchor="middle">KV bytes per sequence / {ref}</text>',
           f'<text x="16" y="{(t + h - b) / 2}" text-anchor="middle" transform="rotate(-90 16 {(t + h - b) / 2})">'
           f'median KL({ref} || policy), nats</text>']
    for i in range(7):
        x = 0.2 * i
        out.append(f'<text x="{sx(x):.1f}" y="{h - b + 16}" text-anchor="middle">{x:.1f}</text>')
    for e in range(ylo, yhi + 1):
        out.append(f'<text x="{l - 6}" y="{sy(e) + 4:.1f}" text-anchor="end">1e{e}</text>')
        out.append(f'<line x1="{l}" y1="{sy(e):.1f}" x2="{w - r}" y2="{sy(e):.1f}" stroke="#ddd"/>')
    placed = []  # label anchors so far: a label that would overlap one is moved down a line
    for label, x, y in pts:
        lx, ly = sx(x) + 6, sy(y) - 6
        while any(abs(lx - px) < 7 * max(len(label), len(pl)) and abs(ly - py) < 13 for px, py, pl in placed):
            ly += 13
        placed.append((lx, ly, label))
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="#1f77b4"/>')
        out.append(f'<text x="{lx:.1f}" y="{ly:.1f}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print(__doc__)
        return 2
    out = sys.argv[1]
    ref = arg("--reference", "full")
    order, ppl, niah = load(out)
    if "--order" in sys.argv:
        order = arg("--order").split(",")
    print(table(order, ppl, niah, ref))
    if "--svg" in sys.argv:
        lengths = sorted({p["length"] for p in ppl.values()})
        title = f"{os.path.basename(os.path.normpath(out))}: fidelity vs KV memory at {'/'.join(map(str, lengths))} tokens"
        with open(arg("--svg"), "w") as f:
            f.write(svg_plot(order, ppl, ref, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
