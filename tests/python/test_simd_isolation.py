#!/usr/bin/env python3
"""No AVX2 or AVX-512 code runs before the CPU check: in the built binaries (shadowkv, shadowkv_tests,
shadowkv_bench), every function holding a VEX (AVX/AVX2) or EVEX (AVX-512) instruction is a file-local kernel of a
SIMD source file, reached only through a backend table after the CPU check. A static initialiser or a weak (inline,
template) function compiled with those flags would run on any CPU (the linker may keep the SIMD file's copy of an
inline function): that is how AVX-512 code once crashed every start-up on an AVX2-only CPU.

The check reads the machine code (objdump), so it fails on any machine, whatever SIMD the CPU has."""
import os
import re
import subprocess
import sys

BIN = os.environ.get("SHADOWKV_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "shadowkv"))
BUILD = os.path.dirname(os.path.abspath(BIN))
SEGMENT_OR_ADDRESS_PREFIX = {"26", "2e", "36", "3e", "64", "65", "67"}
STATIC_INIT = re.compile(r"^(_GLOBAL__sub_I_|_Z41__static_initialization_and_destruction)")


def simd_encoding(raw_bytes):
    """'vex', 'evex' or None for one instruction's bytes (hex strings). In 64-bit mode a leading c4/c5 is always a
    VEX prefix and 62 always EVEX (LES, LDS and BOUND do not exist there)."""
    i = 0
    while i < len(raw_bytes) and raw_bytes[i] in SEGMENT_OR_ADDRESS_PREFIX:
        i += 1
    if i == len(raw_bytes):
        return None
    return {"c4": "vex", "c5": "vex", "62": "evex"}.get(raw_bytes[i])


def simd_functions(binary):
    """{mangled function name: set of encodings} for the functions of `binary` that hold VEX/EVEX instructions."""
    out = subprocess.run(["objdump", "-d", "--no-addresses", "--insn-width=16", binary], check=True,
                         capture_output=True, text=True).stdout
    found, fn = {}, None
    for line in out.splitlines():
        if line.startswith("<") and line.endswith(">:"):
            fn = line[1:-2]
            continue
        parts = line.split("\t")
        if fn and len(parts) >= 3:
            enc = simd_encoding(parts[1].split())
            if enc:
                found.setdefault(fn, set()).add(enc)
    return found


def symbol_types(binary):
    types = {}
    for line in subprocess.run(["nm", binary], check=True, capture_output=True, text=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            types[parts[2]] = parts[1]
    return types


def violations(binary):
    types = symbol_types(binary)
    bad = []
    for fn, encs in simd_functions(binary).items():
        name = fn.split("@")[0]
        if STATIC_INIT.match(name):
            bad.append(f"static initialiser {name} holds {'/'.join(sorted(encs))} code")
        elif types.get(name) != "t":
            bad.append(f"{name} (symbol type {types.get(name, '?')}, not file-local) holds {'/'.join(sorted(encs))} code")
    return bad


def main():
    assert simd_encoding("62 f1 fe 48 6f 15".split()) == "evex"
    assert simd_encoding("67 62 f1 7c 48".split()) == "evex"
    assert simd_encoding("c5 fc 28 c1".split()) == "vex"
    assert simd_encoding("48 8d 05 49 30".split()) is None
    binaries = [os.path.join(BUILD, n) for n in ("shadowkv", "shadowkv_tests", "shadowkv_bench")]
    failed = False
    for b in binaries:
        if not os.path.exists(b):
            print(f"FAIL: {b} not built")
            failed = True
            continue
        found = simd_functions(b)
        # The SIMD kernels themselves must be seen, or this check reads nothing.
        if not any("evex" in e for e in found.values()) or not any("vex" in e for e in found.values()):
            print(f"FAIL: no AVX2/AVX-512 kernels found in {b}: the disassembly was not read as expected")
            failed = True
        bad = violations(b)
        for v in bad:
            print(f"FAIL: {os.path.basename(b)}: {v}")
        failed |= bool(bad)
        if not bad:
            print(f"{os.path.basename(b)}: {len(found)} functions with VEX/EVEX code, all file-local SIMD kernels")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
