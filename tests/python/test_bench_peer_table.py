#!/usr/bin/env python3
"""scripts/bench_peer_table.py: the recorded fixture still gives its recorded table (self-test), and on raw outputs
written here with llama.cpp run at both flash-attention settings (bench-peer --llama-fa on,off) each row takes the
faster setting, names it, and keeps the source order (llama-bench before llama-batched-bench)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("SHADOWKV_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(SRC, "scripts", "bench_peer_table.py")
FIXTURE = os.path.join(SRC, "tests", "fixtures", "bench-peer")


def bench_entry(fa, n_prompt, n_gen, depth, ts, samples=1):
    return {"model_filename": "/m/qwen.gguf", "type_k": "f16", "type_v": "f16", "flash_attn": fa,
            "n_prompt": n_prompt, "n_gen": n_gen, "n_depth": depth, "avg_ts": ts, "stddev_ts": 0.5,
            "samples_ts": [ts] * samples}


def batched_row(fa, pp, pl, speed_pp, speed_tg):
    return json.dumps({"flash_attn": fa, "pp": pp, "tg": 4, "pl": pl, "speed_pp": speed_pp, "speed_tg": speed_tg})


def write_raw(raw):
    os.makedirs(os.path.join(raw, "shadowkv"))
    # ours: lengths 128 and 256, batches 1 and 2, policies full and shadowkv (the recorded fixture's bench.json)
    shutil.copy(os.path.join(FIXTURE, "raw", "shadowkv", "bench.json"), os.path.join(raw, "shadowkv"))
    short = [bench_entry(1, 128, 0, 0, 130.0, 2), bench_entry(0, 128, 0, 0, 110.0, 2),
             bench_entry(1, 0, 4, 0, 30.0, 2), bench_entry(0, 0, 4, 0, 35.0, 2)]
    depth = [bench_entry(1, 0, 4, 256, 8.0), bench_entry(0, 0, 4, 256, 16.0)]
    json.dump(short, open(os.path.join(raw, "llama-bench-short.out"), "w"))
    with open(os.path.join(raw, "llama-bench-depth.out"), "w") as f:
        f.write("llama-bench prints this before its JSON\n" + json.dumps(depth))
    for fa, pp, tg1, tg2 in ((1, 150.0, 7.0, 9.0), (0, 120.0, 12.0, 20.0)):
        rows = [batched_row(fa, 256, 1, pp, tg1), batched_row(fa, 256, 2, pp + 2.0, tg2)]
        rows += [batched_row(fa, 128, 2, 999.0, 50.0 + fa)]
        with open(os.path.join(raw, f"llama-batched-bench-256-fa-{'on' if fa else 'off'}.out"), "w") as f:
            f.write("\n".join(rows) + "\n")


def main():
    subprocess.run([sys.executable, SCRIPT, "self-test", FIXTURE], check=True)
    with tempfile.TemporaryDirectory() as d:
        raw = os.path.join(d, "raw")
        write_raw(raw)
        subprocess.run([sys.executable, SCRIPT, "table", "--raw", raw, "--out", d], check=True, capture_output=True)
        res = json.load(open(os.path.join(d, "table.json")))
        got = {(r["work"], r["length"], r["batch"]): (r["llama_cpp_tok_s"], r["llama_cpp_source"]) for r in res["rows"]}
        want = {
            ("prefill", 128, None): (130.0, "llama-bench, fa on"),  # llama-bench beats batched-bench's 999
            ("decode", 128, 1): (35.0, "llama-bench, fa off"),
            ("decode", 128, 2): (51.0, "llama-batched-bench, fa on"),
            ("prefill", 256, None): (151.0, "llama-batched-bench, fa on"),  # mean of the fa-on rows
            ("decode", 256, 1): (16.0, "llama-bench -d 256, fa off"),  # preferred to batched-bench's 12.0
            ("decode", 256, 2): (20.0, "llama-batched-bench, fa off"),
        }
        assert got == want, f"got {got}"
        ratio = [r for r in res["rows"] if r["work"] == "decode" and r["length"] == 256 and r["batch"] == 2][0]
        assert abs(ratio["ratio_to_llama_cpp"]["full"] - ratio["shadowkv_tok_s"]["full"] / 20.0) < 1e-9, ratio
        md = open(os.path.join(d, "table.md")).read()
        assert "| decode, batch 1 | 256 | 16.0 (fa off) |" in md, md
        assert "| prefill | 128 | 130.0 ± 0.5 (fa on) |" in md, md
    print("bench_peer_table: ok")


if __name__ == "__main__":
    main()
