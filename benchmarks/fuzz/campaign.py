"""The campaign: write each case's files, ask the worker, judge its answer, count outcomes per family, report them
(``main``: the command line of ``benchmarks/fuzz_artefacts.py``)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fuzz.bases import Base, Case, build_bases
from benchmarks.fuzz.families import FAMILIES, make_case
from benchmarks.fuzz.halves import GRAPH
from benchmarks.fuzz.worker import Worker

OUTCOMES = ("refused", "identical", "loaded", "accepted", "silent", "crash", "hang", "memory")
FINE = ("refused", "identical", "loaded", "accepted")


def write_case(case: Case, folder: Path) -> Path:
    """Write the case's files into ``folder`` (emptied first: it holds only files of earlier cases)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    for name, target in case.links.items():
        (folder / name).symlink_to(target)
    x_path = folder / "x.npy"
    if case.x is not None:
        np.save(x_path, case.x)
    elif case.base is not None:
        x_path = case.base.x_path
    return x_path


def judge(answer: dict[str, Any] | str, case: Case, rss_limit_mib: float) -> str:
    if isinstance(answer, str):
        return "hang" if answer == "hang" else "crash"
    outcome = str(answer["outcome"])
    if outcome.startswith("crash"):
        return "crash"
    if answer["peak_mib"] - answer["before_mib"] > rss_limit_mib:
        return "memory"
    if outcome == "changed":
        return "accepted" if case.reforged and not case.expect_refusal else "silent"
    return outcome


def reason(detail: str) -> str:
    """A refusal's message without paths, names and numbers: its kind."""
    text = re.sub(r"/[^\s:'\",)]+", "<path>", detail.splitlines()[0] if detail else "")
    text = re.sub(r"'[^'\s]{0,80}'", "'…'", text)
    text = re.sub(r"\d[\d,_.]*", "#", text)
    return text[:90]


def run_family(
    family: str,
    cases: int,
    args: argparse.Namespace,
    bases: list[Base],
    worker_: Worker,
    scratch: Path,
    findings: list[dict[str, Any]],
) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    used: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    peak = before = slowest = 0.0
    multiline = 0
    multiline_examples: list[dict[str, Any]] = []
    start = time.time()
    for index in range(args.start, args.start + cases):
        case = make_case(args.seed, family, index, bases)
        folder = scratch / "case"
        x_path = write_case(case, folder)
        reference = str(case.base.folder / GRAPH) if case.base is not None and case.x is None else None
        request = {"graph": str(folder / GRAPH), "x": str(x_path), "reference": reference}
        answer = worker_.ask(request, args.time_limit)
        verdict = judge(answer, case, args.rss_limit_mib)
        outcomes[verdict] += 1
        kinds[case.label][verdict] += 1
        used[case.base.name if case.base else "crafted"] += 1
        if isinstance(answer, dict):
            peak = max(peak, answer["peak_mib"] - answer["before_mib"])
            before = max(before, answer["before_mib"])
            slowest = max(slowest, answer["seconds"])
            if verdict == "refused":
                reasons[reason(answer["detail"])] += 1
                if answer["multiline"]:
                    multiline += 1
                    if len(multiline_examples) < 5:
                        multiline_examples.append({"index": index, "label": case.label, "detail": answer["detail"]})
        if verdict not in FINE:
            detail = answer if isinstance(answer, str) else answer["detail"]
            finding = {
                "family": family,
                "index": index,
                "label": case.label,
                "outcome": verdict,
                "base": case.base.name if case.base else None,
                "detail": detail[:400],
                "peak_mib": None if isinstance(answer, str) else answer["peak_mib"],
            }
            findings.append(finding)
            print("FINDING", json.dumps(finding), flush=True)
            if args.findings and sum(1 for f in findings if f["family"] == family) <= 20:
                shutil.copytree(folder, args.findings / f"{family}-{index}", symlinks=True, dirs_exist_ok=True)
        done = index - args.start + 1
        if done % args.progress == 0:
            rate = done / (time.time() - start)
            print(f"  {family}: {done}/{cases} ({rate:.1f}/s) {dict(outcomes)}", flush=True)
    summary = {
        "cases": cases,
        "outcomes": {k: outcomes[k] for k in OUTCOMES if outcomes[k]},
        "wall_s": round(time.time() - start, 1),
        "max_case_s": round(slowest, 2),
        "max_peak_rss_over_start_mib": round(peak, 1),
        "max_rss_at_case_start_mib": round(before, 1),
        "multiline_refusals": multiline,
        "multiline_examples": multiline_examples,
        "bases": dict(sorted(used.items())),
        "kinds": {k: dict(v) for k, v in sorted(kinds.items())},
        "refusal_reasons": dict(reasons.most_common(15)),
    }
    print(
        family,
        json.dumps(
            {k: summary[k] for k in ("cases", "outcomes", "wall_s", "max_case_s", "max_peak_rss_over_start_mib")}
        ),
        flush=True,
    )
    return summary


def split_cases(total: int, families: list[str]) -> dict[str, int]:
    share = sum(FAMILIES[f] for f in families)
    return {f: max(1, round(total * FAMILIES[f] / share)) for f in families}


def main(description: str | None = None) -> int:
    """The command line; ``description`` is its ``--help`` text (the entry point's docstring)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=3000, help="cases in all, shared out by family (default: 3000)")
    p.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first case index of each family (to resume)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds a case may take before it is a hang")
    p.add_argument("--memory-limit-mib", type=int, default=4096, help="the worker's address-space ceiling")
    p.add_argument("--rss-limit-mib", type=float, default=1536.0, help="a case's RSS growth counted as a finding")
    p.add_argument("--progress", type=int, default=1000, help="print counts every this many cases")
    p.add_argument("--findings", type=Path, help="copy the files of the first 20 findings per family here")
    p.add_argument("--replay", help="FAMILY:INDEX: run that one case and print its answer")
    p.add_argument("--keep", type=Path, help="with --replay: write the case's files here")
    p.add_argument("--json", type=Path, help="write the results here (after each family)")
    args = p.parse_args()
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="fuzz_artefacts_") as tmp:
        scratch = Path(tmp)
        bases = build_bases(scratch / "bases")
        print(
            f"{len(bases)} bases in {time.time() - start:.0f} s: "
            + ", ".join(f"{b.name} ({'/'.join(b.codecs())}, ≤{b.chunks()} chunks, v{b.version})" for b in bases),
            flush=True,
        )
        worker_ = Worker(args.memory_limit_mib, scratch / "worker.log")
        if args.replay:
            family, index = args.replay.split(":")
            case = make_case(args.seed, family, int(index), bases)
            folder = args.keep or scratch / "case"
            if args.keep and args.keep.exists() and any(args.keep.iterdir()):
                p.error(f"--keep {args.keep} must be a new or empty folder")
            x_path = write_case(case, folder)
            reference = str(case.base.folder / GRAPH) if case.base is not None and case.x is None else None
            answer = worker_.ask(
                {"graph": str(folder / GRAPH), "x": str(x_path), "reference": reference}, args.time_limit
            )
            print(
                json.dumps({"label": case.label, "answer": answer, "verdict": judge(answer, case, args.rss_limit_mib)})
            )
            worker_.stop()
            return 0
        if args.findings:
            args.findings.mkdir(parents=True, exist_ok=True)
        from benchmarks.common import cpu_facts

        report: dict[str, Any] = {
            "command": " ".join(sys.argv),
            "seed": args.seed,
            "host": cpu_facts(),
            "limits": {
                "time_limit_s": args.time_limit,
                "memory_limit_mib": args.memory_limit_mib,
                "rss_limit_mib": args.rss_limit_mib,
            },
            "bases": {
                b.name: {
                    "codecs": b.codecs(),
                    "max_chunks": b.chunks(),
                    "version": b.version,
                    "sidecar_bytes": len(b.sidecar),
                    "graph_bytes": len(b.graph),
                }
                for b in bases
            },
            "families": {},
            "findings": [],
        }
        findings: list[dict[str, Any]] = []
        try:
            for family, cases in split_cases(args.cases, args.families).items():
                report["families"][family] = run_family(family, cases, args, bases, worker_, scratch, findings)
                report["findings"] = findings[:300]
                report["cases"] = sum(f["cases"] for f in report["families"].values())
                report["totals"] = dict(sum((Counter(f["outcomes"]) for f in report["families"].values()), Counter()))
                report["wall_s"] = round(time.time() - start, 1)
                report["worker_starts"] = worker_.starts
                if args.json:
                    args.json.write_text(json.dumps(report, indent=1) + "\n")
        finally:
            worker_.stop()
    print(json.dumps({k: report.get(k) for k in ("cases", "totals", "wall_s", "worker_starts")}))
    return 0
