"""Fuzz both halves of exported graph + sidecar pairs: damage or edit one file (or both, with their checksums
re-forged), then ``runtime.load`` and one inference in a worker process with a time limit and a memory ceiling.

Every case ends in one of these outcomes:

* ``refused``: a ``ToolchainError`` (the answer a damaged or inconsistent file must get);
* ``identical``: it loaded and every output is bit-identical to the intact pair's (an edit that changes nothing);
* ``loaded``: a crafted pair (no intact twin to compare with) loaded within the memory limits;
* ``accepted``: it loaded and the outputs differ, but the case re-forged the checksums that would have caught it
  (the graph's digest, the sidecar's SHA-256 in the graph, the header or chunk CRC-32s) and changed nothing that a
  cross-check of the runtime covers: accepted by design, as a digest and CRCs are integrity, not a signature
  (``runtime.load(public_key=)`` is the answer to an attacker who rewrites both files);
* ``silent``: it loaded and the outputs differ, and either nothing was re-forged or the edit contradicts a check
  the runtime documents (a weight's name, shape, type, zero-point, steps, multiplier or axis in one half against the
  other; a hollow weight's external-data entries): the failure this measures;
* ``crash``: any other exception (or the worker process died);
* ``hang``: no answer within ``--time-limit`` seconds (the worker is killed and restarted);
* ``memory``: out of memory under the worker's address-space ceiling (``--memory-limit-mib``, RLIMIT_AS), or a
  case whose peak RSS grew more than ``--rss-limit-mib`` over the RSS it started at (the worker resets its peak
  before each case).

The bases: ``lenet5_tiny`` at W2 restricted to each codec in turn (one chunk per tensor), at W4 restricted to each
codec with chunks of 2,048 levels (up to 46 chunks per tensor), at W8 with uint8 containers, at W2 re-written as
format 1, and ``resnet20_tiny`` at W4 with the codecs the exporter picks. The families (``--families``):

* ``graph-bytes``, ``sidecar-bytes``: random byte damage (one to four flips, cuts of up to 64 bytes, inserts or
  overwrites of up to 16) to one file;
* ``graph-bytes-resealed``: byte damage to the graph (retried until it still parses as ONNX), then its digest
  recomputed; ``sidecar-bytes-resealed``: byte damage to the sidecar, its new SHA-256 written into the graph and the
  graph's digest recomputed;
* ``graph-edits-resealed``: one structured edit of the graph (metadata, hollow initializers' dims, types and
  external-data entries, weight and activation scales and zero-points, biases, node inputs, types and attributes,
  graph inputs, opsets, external tensors), digest recomputed;
* ``sidecar-header-bytes-reforged``: byte damage inside the JSON header, its length and CRC-32 re-forged, then the
  SHA-256 and digest; ``sidecar-header-edits-reforged``: one structured edit of the header (a field's value or
  type, keys dropped, added or renamed, records dropped, duplicated, swapped or renamed, chunk tables, codecs, the
  preamble's version), all checksums re-forged;
* ``sidecar-payload-reforged``: one chunk's coded bytes damaged, truncated, extended, replaced or swapped with
  another chunk's, its length and CRC-32 re-forged (and every offset after it), so every codec's decoder meets
  streams that pass every checksum;
* ``crafted-size-pairs``: the hand-built pairs of ``tests/runtime/crafted.py`` at random declared sizes (up to 2^32
  levels), chunk sizes, format versions, containers and header padding;
* ``crafted-size-edits``: a real base edited to declare huge sizes (shapes of up to 2^44 levels with the graph's
  dims to match, huge or tiny ``chunk_levels``, padded configs and records, deeply nested JSON, huge numbers), with
  every checksum re-forged.

A case is reproducible from ``--seed``, its family and its index (``--replay FAMILY:INDEX --keep DIR``). The code
is the package ``benchmarks/fuzz/`` (its ``__init__`` lists the modules); this file is its command line.

  nice -n 19 env PYTHONPATH=. .venv/bin/python benchmarks/fuzz_artefacts.py --cases 106000 \\
      --json benchmarks/results/fuzz_artefacts_100k.json
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.fuzz.campaign import main  # noqa: E402 (needs ROOT on the path)

if __name__ == "__main__":
    raise SystemExit(main(__doc__))
