#!/usr/bin/env python3
"""Checks the committed tokenizer fixtures against the independent reference implementations, and the CLI against
the fixtures.

1. Gemma 3: re-encodes every fixture text with `sentencepiece` (ModelProto rebuilt from $SHADOWKV_MODEL's vocab, the
   same construction as scripts/gen-tokenizer-fixtures) and requires the committed ids.
2. BPE: loads each committed GGUF (vocab, merges, token types) into HF `tokenizers` with the llama3 / qwen2
   pre-tokenizer and requires the committed ids (so the fixtures do not depend on training being reproducible).
3. CLI: `$SHADOWKV_BIN tokenize -m MODEL -f FILE --no-bos [--special]` must print the fixture ids for a sample of cases.

Needs: gguf, numpy, sentencepiece, protobuf, tokenizers.
"""
import json
import os
import subprocess
import sys
import tempfile
from importlib.machinery import SourceFileLoader

SRC = os.environ.get("SHADOWKV_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FIX = os.path.join(SRC, "tests", "fixtures", "tokenizer")
GGUFS = os.environ.get("SHADOWKV_FIXTURE_GGUFS", "")  # written by ctest's fixture_ggufs step
gen = SourceFileLoader("gen_tokenizer_fixtures", os.path.join(SRC, "scripts", "gen-tokenizer-fixtures")).load_module()

failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg)


def load(name):
    with open(os.path.join(FIX, name), encoding="utf-8") as f:
        return json.load(f)


def check_gemma(model):
    fx = load("gemma3_ids.json")
    sp, control = gen.build_sentencepiece(model)
    n = 0
    for c in fx["cases"]:
        if c["parse_special"]:
            ids = []
            for frag, special in gen.split_special(c["text"], control):
                ids += [sp.piece_to_id(frag)] if special else sp.encode(frag)
        else:
            ids = sp.encode(c["text"])
        check(ids == c["ids"], f"gemma: sentencepiece disagrees with fixture on {c['text'][:60]!r}")
        n += 1
    check(n >= 150, f"gemma: only {n} cases")
    # Published ids from the GGUF token table.
    for piece, want in [("<start_of_turn>", 105), ("<end_of_turn>", 106), ("\n", 107), ("user", 2364), ("model", 4368)]:
        check(sp.piece_to_id(piece) == want, f"gemma: id of {piece!r} is {sp.piece_to_id(piece)}, want {want}")
    print(f"gemma: {n} cases agree with sentencepiece {fx['generator']}")
    return fx


def hf_from_gguf(path, kind):
    from gguf import GGUFReader
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    f = GGUFReader(path).fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in f["tokenizer.ggml.merges"].contents()]
    pre = f["tokenizer.ggml.pre"].contents()
    cfg = gen.BPE_KINDS[kind]
    check(pre == cfg["pre"], f"{kind}: GGUF pre is {pre}")
    vocab = {t: i for i, t in enumerate(tokens)}  # HF keeps added tokens in the model vocab too
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=cfg["ignore_merges"]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(cfg["regex"]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    added = sorted((i, t, types[i]) for i, t in enumerate(tokens) if types[i] in (3, 4))
    for i, t, ty in added:
        tok.add_tokens([AddedToken(t, special=(ty == 3), normalized=False)]) if ty == 4 else \
            tok.add_special_tokens([AddedToken(t, special=True, normalized=False)])
        check(tok.token_to_id(t) == i, f"{kind}: added token {t!r} got id {tok.token_to_id(t)}, want {i}")
    return tok


def check_bpe(kind):
    fx = load(f"bpe_{kind}_ids.json")
    tok = hf_from_gguf(os.path.join(GGUFS, f"bpe_{kind}.gguf"), kind)
    n = 0
    for c in fx["cases"]:
        tok.encode_special_tokens = not c["parse_special"]
        ids = tok.encode(c["text"], add_special_tokens=False).ids
        check(ids == c["ids"], f"{kind}: tokenizers disagrees with fixture on {c['text'][:60]!r}")
        n += 1
    check(n >= 150, f"{kind}: only {n} cases")
    check(os.path.getsize(os.path.join(GGUFS, f"bpe_{kind}.gguf")) < 200_000, f"{kind}: fixture GGUF too large")
    print(f"{kind}: {n} cases agree with tokenizers {fx['generator']}")


def run_cli(binary, model, text, special):
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        cmd = [binary, "tokenize", "-m", model, "-f", path, "--no-bos"] + (["--special"] if special else [])
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        return None, r.stderr.strip()
    out = r.stdout.strip().splitlines()
    return ([int(x) for x in out[-1].split()] if out else []), ""


def check_cli(binary, model, gemma_fx):
    cases = [c for c in gemma_fx["cases"] if c["text"]]
    sample = cases[:8] + [c for c in cases if c["parse_special"]][:3] + [cases[-1]]
    for c in sample:
        ids, err = run_cli(binary, model, c["text"], c["parse_special"])
        check(ids == c["ids"], f"cli: `tokenize` on {c['text'][:40]!r} gave {ids if ids is not None else err}")
    print(f"cli: {len(sample)} cases checked")


def main():
    model = os.environ.get("SHADOWKV_MODEL")
    binary = os.environ.get("SHADOWKV_BIN")
    check(bool(model) and os.path.exists(model), f"SHADOWKV_MODEL not set or missing: {model}")
    check(bool(binary) and os.path.exists(binary), f"SHADOWKV_BIN not set or missing: {binary}")
    if failures:
        return 1
    fx = check_gemma(model)
    for kind in gen.BPE_KINDS:
        check_bpe(kind)
    check_cli(binary, model, fx)
    print(f"{'FAILED' if failures else 'OK'}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
