#!/usr/bin/env python3
"""Table of llama.cpp vs shadowkv throughput from the raw outputs scripts/bench-peer collects.

  bench_peer_table.py table --raw RAW --out OUT   # writes OUT/table.md and OUT/table.json, prints the table
  bench_peer_table.py self-test DIR               # parses DIR/raw, compares the table rows with DIR/table.md

RAW holds (names as scripts/bench-peer writes them):
  llama-bench-short*.out    llama-bench -o json at the shortest length: prefill (pp) and batch-1 decode (tg)
  llama-bench-depth*.out    llama-bench -o json -p 0 -d L...: batch-1 decode at depth L, the shortest length
                            too (optional; without it, tg at depth 0 of llama-bench-short stands for the shortest)
  llama-batched-bench-L.out llama-batched-bench --output-format jsonl: prefill and decode per batch at L (optional)
  shadowkv/bench.json       build/shadowkv bench --out: prefill and decode per (length, policy, batch)
  commands.txt              the commands, in the order they ran
  llama-build.txt           how llama.cpp was built, when not the plain native build (optional, one sentence)
  (bench-peer --llama-fa on,off runs llama.cpp once per flash-attention setting: llama-bench -fa on,off in one file,
  llama-batched-bench-L-fa-on.out / -fa-off.out; each row takes the faster setting, as its JSON records it)
Lengths, batches and policies are taken from shadowkv's bench.json; ratios are shadowkv / llama.cpp (> 1: faster).
"""
import glob
import json
import os
import platform
import sys
import time


def load_llama_bench(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read()
    start = text.find("[")  # the JSON array; anything printed before it is ignored
    if start < 0:
        raise SystemExit(f"error: no JSON array in {path}")
    return json.loads(text[start:])


def load_batched_bench(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{") and '"speed_tg"' in line:
                rows.append(json.loads(line))
    if not rows:
        raise SystemExit(f"error: no jsonl rows in {path} (did llama-batched-bench skip them for lack of context?)")
    return rows


def collect(raw):
    with open(os.path.join(raw, "shadowkv", "bench.json")) as f:
        ours = json.load(f)["runs"]
    if not ours:
        raise SystemExit("error: shadowkv bench.json has no runs")
    lengths = sorted({r["length"] for r in ours})
    batches = sorted({r["batch"] for r in ours})
    policies = list(dict.fromkeys(r["policy"] for r in ours))
    ntok = ours[0]["decode_tokens"]
    short = lengths[0]

    # llama.cpp figures: {(work, length, batch): (tok/s, stddev or None, source, rank, fa)}, fa "on" / "off" or None
    # for llama.cpp's own choice (auto). Per figure the most direct
    # source (lowest rank) counts; among its runs (one per flash-attention setting) the fastest: llama.cpp is
    # compared at its best setting, and the table says which one that was.
    peer = {}

    def offer(key, ts, sd, source, rank, fa):
        setting = None if fa is None or fa < 0 else ("on" if fa else "off")
        old = peer.get(key)
        if old is None or rank < old[3] or (rank == old[3] and ts > old[0]):
            peer[key] = (ts, sd, source + (f", fa {setting}" if setting else ""), rank, setting)

    lb = [t for path in sorted(glob.glob(os.path.join(raw, "llama-bench-short*.out"))) for t in load_llama_bench(path)]
    lb_depth = [t for path in sorted(glob.glob(os.path.join(raw, "llama-bench-depth*.out")))
                for t in load_llama_bench(path)]
    model = kv_type = None
    for t in lb + lb_depth:
        model = model or t.get("model_filename")
        kv_type = kv_type or f"{t.get('type_k')}/{t.get('type_v')}"
        sd = t["stddev_ts"] if len(t.get("samples_ts", [])) > 1 else None
        fa = t.get("flash_attn")
        if t["n_prompt"] > 0 and t["n_gen"] == 0:
            offer(("prefill", t["n_prompt"] + t.get("n_depth", 0), 1), t["avg_ts"], sd, "llama-bench", 0, fa)
        elif t["n_prompt"] == 0 and t["n_gen"] > 0:
            depth = t.get("n_depth", 0)
            # tg at depth 0 (llama-bench's own convention: tg without a prompt) stands for the shortest length only
            # when no run at that depth exists; ours always decodes after the prompt.
            if depth > 0:
                offer(("decode", depth, 1), t["avg_ts"], sd, f"llama-bench -d {depth}", 0, fa)
            else:
                offer(("decode", short, 1), t["avg_ts"], sd, "llama-bench", 1, fa)
    for path in sorted(glob.glob(os.path.join(raw, "llama-batched-bench-*.out"))):
        rows = load_batched_bench(path)
        for L in {r["pp"] for r in rows}:  # every row prefills the prompt once (-pps); the figure is their mean
            pps = [r["speed_pp"] for r in rows if r["pp"] == L]
            offer(("prefill", L, 1), sum(pps) / len(pps), None, "llama-batched-bench", 1, rows[0].get("flash_attn"))
        for r in rows:  # llama-bench -d is the preferred batch-1 source
            offer(("decode", r["pp"], r["pl"]), r["speed_tg"], None, "llama-batched-bench", 2 if r["pl"] == 1 else 0,
                  r.get("flash_attn"))

    rows = []
    for L in lengths:
        works = [("prefill", 1)] + [("decode", b) for b in batches]
        for work, b in works:
            ours_by_policy = {}
            for p in policies:
                m = [r for r in ours if r["length"] == L and r["policy"] == p and (work == "prefill" or r["batch"] == b)]
                if m:
                    ours_by_policy[p] = m[0]["prefill_tok_s"] if work == "prefill" else m[0]["decode_tok_s_total"]
            pv = peer.get((work, L, b))
            rows.append(
                {
                    "work": work,
                    "length": L,
                    "batch": b if work == "decode" else None,
                    "llama_cpp_tok_s": pv[0] if pv else None,
                    "llama_cpp_stddev": pv[1] if pv else None,
                    "llama_cpp_source": pv[2] if pv else None,
                    "llama_cpp_flash_attn": pv[4] if pv else None,
                    "shadowkv_tok_s": ours_by_policy,
                    "ratio_to_llama_cpp": {
                        p: (v / pv[0] if pv and pv[0] > 0 else None) for p, v in ours_by_policy.items()
                    },
                }
            )
    cpath = os.path.join(raw, "commands.txt")
    commands = [c for c in open(cpath).read().splitlines() if c] if os.path.exists(cpath) else []
    if model is None:  # no llama-bench output (--llama-batched-only): the model path from the first command
        words = commands[0].split() if commands else []
        model = words[words.index("-m") + 1] if "-m" in words[:-1] else None
    npath = os.path.join(raw, "llama-build.txt")
    build_note = open(npath).read().strip() if os.path.exists(npath) else ""
    return {
        "model": model,
        "llama_cpp_kv_type": kv_type,
        "lengths": lengths,
        "batches": batches,
        "policies": policies,
        "policy_args": {p: next(r.get("policy_args", "") for r in ours if r["policy"] == p) for p in policies},
        "decode_tokens": ntok,
        "rows": rows,
        "commands": commands,
        "llama_cpp_build_note": build_note,
    }


def fmt(v, nd=1):
    return "–" if v is None else f"{v:.{nd}f}"


def table_rows(res):
    pol = res["policies"]
    head = "| work | tokens | llama.cpp tok/s | " + " | ".join(f"shadowkv {p} tok/s | {p} / llama.cpp" for p in pol) + " |"
    sep = "|---|---:|---:|" + "---:|---:|" * len(pol)
    lines = [head, sep]
    for r in res["rows"]:
        work = "prefill" if r["work"] == "prefill" else ("decode, batch 1" if r["batch"] == 1 else
                                                          f"decode, batch {r['batch']} (total)")
        peer = fmt(r["llama_cpp_tok_s"])
        if r["llama_cpp_stddev"] is not None:
            peer += f" ± {r['llama_cpp_stddev']:.1f}"
        if r.get("llama_cpp_flash_attn"):  # an explicit setting (bench-peer --llama-fa), not llama.cpp's auto
            peer += f" (fa {r['llama_cpp_flash_attn']})"
        cells = []
        for p in pol:
            cells.append(fmt(r["shadowkv_tok_s"].get(p)))
            ratio = r["ratio_to_llama_cpp"].get(p)
            cells.append("–" if ratio is None else f"{ratio:.2f}×")
        lines.append(f"| {work} | {r['length']} | {peer} | " + " | ".join(cells) + " |")
    return lines


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "host": platform.node(),
            "loadavg_at_table_time": load, "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def sources(res):
    if any("/llama-bench " in c for c in res["commands"]):
        return ("llama.cpp sources: llama-bench (prefill at the shortest length, mean ± stddev; batch-1 decode at "
                "depth L after an L-token prompt, as ours), llama-batched-bench -pps -no-kvu (prefill at longer "
                "lengths, batched decode).")
    return ("llama.cpp sources: llama-batched-bench -pps -no-kvu alone (bench-peer --llama-batched-only): prefill "
            "(the mean over its batch sizes, one prefill each) and decode at every batch size, batch 1 included.")


def markdown(res):
    m = res["machine"]
    text = [
        f"llama.cpp vs shadowkv on {os.path.basename(res['model'] or '?')}, {res['decode_tokens']} decode tokens, "
        f"{m['date']}, {m['cpu']} ({m['cores']} cores; load average {m['loadavg_at_table_time']} when the table was "
        f"written). llama.cpp's KV cache: {res['llama_cpp_kv_type'] or 'f16/f16'} (its default); shadowkv's policies: "
        + ", ".join(f"`{p}` " + (f"`{a}`" if a else "(defaults)") for p, a in res["policy_args"].items()) + "."
        + (" Every engine command ran under `chrt -f 10` (--rt)." if any(c.startswith("chrt ") for c in res["commands"])
           else " Without --rt: other jobs on the machine may have set the pace.")
        + (f" {res['llama_cpp_build_note']}" if res.get("llama_cpp_build_note") else ""),
        "",
        "The engines ran one after the other; ratios > 1: shadowkv is faster. " + sources(res) + " Batched decode is the total "
        "over all sequences. Where llama.cpp ran with more than one flash-attention setting (bench-peer --llama-fa), "
        "each row takes its faster one, named in the cell.",
        "",
    ]
    text += table_rows(res)
    text += ["", "Commands, in the order they ran:", ""] + [f"    {c}" for c in res["commands"]]
    return "\n".join(text) + "\n"


def main(argv):
    if len(argv) >= 2 and argv[1] == "table":
        args = dict(zip(argv[2::2], argv[3::2]))
        raw, out = args["--raw"], args["--out"]
        res = collect(raw)
        res["machine"] = machine()
        md = markdown(res)
        with open(os.path.join(out, "table.md"), "w") as f:
            f.write(md)
        with open(os.path.join(out, "table.json"), "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")
        print(md, end="")
        print(f"(wrote {out}/table.md and {out}/table.json)", file=sys.stderr)
        return 0
    if len(argv) == 3 and argv[1] == "self-test":
        d = argv[2]
        got = table_rows(collect(os.path.join(d, "raw")))
        want = [l.rstrip("\n") for l in open(os.path.join(d, "table.md")) if l.startswith("|")]
        if got != want:
            print("bench-peer self-test FAILED\n--- expected\n" + "\n".join(want) + "\n--- got\n" + "\n".join(got))
            return 1
        print(f"bench-peer self-test ok ({len(got) - 2} rows)")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
