"""Peak memory of ``runtime.load`` and ``toolchain inspect`` on crafted graph + sidecar pairs (issue 31, "Bounded
memory"), and on real exports given with --real; each command in a fresh process, which reports its own peak RSS
(``VmHWM`` of /proc/self/status: Linux).

The pairs (tests/runtime/crafted.py) pass every check of a load but the memory limits: one weight whose one-level
``ans`` chunks code any size in a few bytes, or whose dense chunks (every 8-bit level once) earn the per-byte
budget honestly. --root runs another source tree (an unpacked ``git archive`` of an older commit) for a before and
after on the same pairs.

  python benchmarks/memory_bounds.py
  python benchmarks/memory_bounds.py --root /tmp/before --only 2^28 --real runs/x/export/model.compressed.onnx
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.runtime.crafted import crafted_pair

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, re, sys
import onnx, onnxruntime, runtime
code = 0
if sys.argv[1] == "load":
    try:
        model = runtime.load(sys.argv[2])
        outcome = f"loaded {sum(a.size for a in model.weights().values()):,} levels"
    except runtime.ToolchainError as e:
        outcome, code = f"error: {e}", 2
else:
    from toolchain.cli.main import main
    code = main(["inspect", sys.argv[2]])
    outcome = "ok" if code == 0 else "refused"
status = open("/proc/self/status").read()  # VmHWM: this process's peak; ru_maxrss also holds the parent's at fork
print(json.dumps([outcome, code, int(re.search(r"VmHWM:\\s*(\\d+) kB", status).group(1)) / 1024]))
"""
S14, S15 = (1 << 14, 1 << 14), (1 << 15, 1 << 15)
CASES = {
    "2^30 one chunk, config padded to 1 MB": dict(shape=S15, chunk_levels=1 << 30, pad=990_000),
    "2^30 v1 one chunk, config padded to 1 MB": dict(shape=S15, version=1, pad=990_000),
    "2^30 chunks of 2^18, config padded to 1 MB": dict(shape=S15, chunk_levels=1 << 18, pad=960_000),
    "2^30 uint8 chunks of 2^18, config padded to 1 MB": dict(shape=S15, chunk_levels=1 << 18, pad=960_000, uint8=True),
    "2^30 dense chunks of 2^20": dict(shape=S15, chunk_levels=1 << 20, dense=True),
    "2^28 chunks of 2^18, config padded to 200 KB": dict(shape=S14, chunk_levels=1 << 18, pad=200_000),
    "2^28 dense chunks of 2^18": dict(shape=S14, chunk_levels=1 << 18, dense=True),
    "2^28 dense uint8 chunks of 2^18": dict(shape=S14, chunk_levels=1 << 18, dense=True, uint8=True),
    "2^24 v1 one chunk": dict(shape=(1 << 12, 1 << 12), version=1),
    "170,000 chunks of one level": dict(shape=(170_000, 1), chunk_levels=1),
    "tiny (4 x 4)": dict(shape=(4, 4)),
}


def peak(root: Path, what: str, path: Path, env: dict[str, str]) -> tuple[str, float]:
    command = [sys.executable, "-c", CHILD, what, str(path)]
    run = subprocess.run(command, capture_output=True, text=True, cwd=root, env={**os.environ, **env})
    if run.returncode not in (0, 2) or not run.stdout.strip():
        return (run.stderr.strip().splitlines() or ["?"])[-1], float("nan")
    outcome, code, mib = json.loads(run.stdout.strip().splitlines()[-1])
    if what == "inspect" and code:
        outcome = (run.stderr.strip().splitlines() or ["?"])[-1]
    return outcome, mib


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=ROOT, help="source tree to run (default: this one)")
    p.add_argument("--only", nargs="*", default=[], help="cases whose name contains one of these")
    p.add_argument("--real", nargs="*", type=Path, default=[], help="exported graphs (model.compressed.onnx) too")
    p.add_argument("--load-only", action="store_true", help="skip inspect (which took 11.6 GiB at 2^30 before)")
    p.add_argument("--max-levels", help="TOOLCHAIN_MAX_LEVELS for the children")
    args = p.parse_args()
    env = {"TOOLCHAIN_MAX_LEVELS": args.max_levels} if args.max_levels else {}
    with tempfile.TemporaryDirectory() as tmp:
        pairs = [
            (name, crafted_pair(Path(tmp) / re.sub(r"\W+", "_", name), **kw))
            for name, kw in CASES.items()
            if not args.only or any(o in name for o in args.only)
        ] + [(f"real: {path}", path.resolve()) for path in args.real]
        for name, path in pairs:
            size = sum(f.stat().st_size for f in path.parent.glob(f"{path.name.split('.')[0]}.compressed*"))
            for what in ("load",) if args.load_only else ("load", "inspect"):
                outcome, mib = peak(args.root, what, path, env)
                print(f"{name:<50} {size / 1e6:6.3f} MB {what:<7} peak {mib:8.1f} MiB  {outcome[:150]}", flush=True)


if __name__ == "__main__":
    main()
