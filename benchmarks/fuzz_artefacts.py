"""Fuzz both halves of an exported pair: random damage to the graph file or the sidecar, then ``runtime.load`` and
one inference. Every case ends in one of four outcomes:

* ``refused``: a one-line ``ToolchainError`` (the only acceptable answer to a damaged file);
* ``identical``: it loaded and the outputs are bit-identical to the intact pair's (damage that changes nothing);
* ``silent``: it loaded and the outputs differ (the failure this measures);
* ``crash``: any other exception.

Three campaigns: the graph damaged; the sidecar damaged; and the sidecar damaged then *re-signed* (its new SHA-256
recorded in the graph and the graph's digest recomputed, as an attacker who rewrites both files would), which gets
past the hashes to the parser, the CRCs, the codecs and the graph/sidecar cross-checks.

  PYTHONPATH=. .venv/bin/python benchmarks/fuzz_artefacts.py --cases 3000 --json benchmarks/results/fuzz_artefacts.json
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

DAMAGE = ("flip", "cut", "insert", "overwrite")


def damage(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits: bit flips, cuts of up to 64 bytes, inserts and overwrites of up to 16."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind, at = rng.choice(DAMAGE), rng.randrange(max(len(out), 1))
        if kind == "flip" and out:
            out[at] ^= 1 << rng.randrange(8)
        elif kind == "cut":
            del out[at : at + rng.randint(1, 64)]
        elif kind == "insert":
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif out:
            n = rng.randint(1, 16)
            out[at : at + n] = rng.randbytes(len(out[at : at + n]))
    return bytes(out)


def resign(folder: Path, sidecar: bytes) -> None:
    """Record the damaged sidecar's SHA-256 in the graph and reseal the graph's own digest."""
    import hashlib

    import onnx

    from runtime.session import META_GRAPH_SHA256, META_SIDECAR_SHA256, graph_digest

    graph = onnx.load(str(folder / "model.compressed.onnx"), load_external_data=False)
    for entry in graph.metadata_props:
        if entry.key == META_SIDECAR_SHA256:
            entry.value = hashlib.sha256(sidecar).hexdigest()
    digest = graph_digest(graph)
    for entry in graph.metadata_props:
        if entry.key == META_GRAPH_SHA256:
            entry.value = digest
    (folder / "model.compressed.onnx").write_bytes(graph.SerializeToString())


def outcome(folder: Path, x: np.ndarray, reference: np.ndarray) -> str:
    import runtime
    from runtime import ToolchainError

    try:
        out = runtime.load(folder / "model.compressed.onnx").run(x)[0]
    except ToolchainError:
        return "refused"
    except Exception as e:
        return f"crash:{type(e).__name__}"
    return "identical" if out.shape == reference.shape and np.array_equal(out, reference) else "silent"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=3000, help="damaged files per campaign (default: 3000)")
    p.add_argument("--model", default="resnet20_tiny", help="registry model to export (default: resnet20_tiny)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the counts here")
    args = p.parse_args()

    import runtime
    from exporters import export_model
    from tests.exporters.helpers import prepared, sample

    rng = random.Random(args.seed)
    start = time.time()
    results: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        intact = Path(tmp) / "intact"
        exported = export_model(prepared(args.model), sample(args.model, 2), intact, config={"fuzz": True})
        assert exported.sidecar is not None
        x = sample(args.model, 4, seed=5).numpy()
        reference = runtime.load(intact / "model.compressed.onnx").run(x)[0]
        campaigns = (("graph", "model.compressed.onnx"), ("sidecar", exported.sidecar.name),
                     ("sidecar, re-signed", exported.sidecar.name))  # fmt: skip
        for campaign, name in campaigns:
            counts: Counter[str] = Counter()
            original = (intact / name).read_bytes()
            for _ in range(args.cases):
                case = Path(tmp) / "case"
                shutil.rmtree(case, ignore_errors=True)
                shutil.copytree(intact, case)
                damaged = damage(original, rng)
                (case / name).write_bytes(damaged)
                if campaign.endswith("re-signed"):
                    resign(case, damaged)
                counts[outcome(case, x, reference)] += 1
            results[campaign] = dict(counts)
            print(campaign, dict(counts), flush=True)
    summary = {"model": args.model, "cases_per_campaign": args.cases, "seed": args.seed, "results": results,
               "wall_s": round(time.time() - start, 1)}  # fmt: skip
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
