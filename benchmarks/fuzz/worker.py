"""The worker: a process that loads and runs one case at a time under a memory ceiling (``worker``, launched as
``python -m benchmarks.fuzz.worker``), and the parent's handle on it, restarted when it dies or hangs (``Worker``)."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _status_mib(key: str) -> float:
    status = Path("/proc/self/status").read_text()
    found = re.search(rf"{key}:\s*(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else float("nan")


def worker(memory_limit_mib: int) -> None:
    """Answer one JSON line per request line: load the case's graph, run it, compare with the base's outputs."""
    import faulthandler

    if memory_limit_mib:
        limit = memory_limit_mib << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    faulthandler.enable()
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing a library prints can reach the channel
    import onnxruntime as ort

    import runtime
    from runtime import ToolchainError

    def infer(path: str, x: np.ndarray) -> list[np.ndarray]:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        return runtime.load(path, session_options=options).run(x)

    references: dict[str, list[np.ndarray]] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("ping"):
            channel.write(json.dumps({"pong": True}) + "\n")
            continue
        x = np.load(request["x"])
        reference = request.get("reference")
        if reference and reference not in references:
            references[reference] = infer(reference, x)
        before = _status_mib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS: this case's peak
        start = time.perf_counter()
        detail = ""
        try:
            outputs = infer(request["graph"], x)
        except ToolchainError as e:
            detail = str(e)
            outcome = "memory" if detail.startswith("out of memory") else "refused"
        except MemoryError as e:
            outcome, detail = "memory", f"MemoryError: {e}"
        except BaseException as e:  # pyo3's PanicException is a BaseException
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            import traceback

            frames = traceback.extract_tb(e.__traceback__)
            ours = [f for f in frames if f"{os.sep}runtime{os.sep}" in f.filename] or frames  # the runtime's last
            place = ", ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in (ours[-1], frames[-1]))
            outcome, detail = f"crash:{type(e).__name__}", f"{type(e).__name__}: {e} (at {place})"
        else:
            if not reference:
                outcome = "loaded"
            else:
                expected = references[reference]
                same = len(outputs) == len(expected) and all(
                    o.shape == e.shape and o.dtype == e.dtype and np.array_equal(o, e, equal_nan=True)
                    for o, e in zip(outputs, expected)
                )
                outcome = "identical" if same else "changed"
            del outputs
        seconds = time.perf_counter() - start
        answer = {
            "outcome": outcome,
            "detail": detail[:400],
            "multiline": "\n" in detail.strip(),
            "seconds": round(seconds, 4),
            "peak_mib": round(_status_mib("VmHWM"), 1),
            "before_mib": round(before, 1),
        }
        channel.write(json.dumps(answer) + "\n")


class Worker:
    """A worker process, restarted when it dies or hangs."""

    def __init__(self, memory_limit_mib: int, log: Path) -> None:
        self.memory_limit_mib, self.log = memory_limit_mib, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.buffer = b""
        self.starts = 0

    def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.fuzz.worker",
                    "--memory-limit-mib",
                    str(self.memory_limit_mib),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
                env=env,
            )
        self.buffer = b""
        self.starts += 1
        answer = self._ask({"ping": True}, 600)
        assert isinstance(answer, dict) and answer.get("pong"), f"worker did not start: {answer}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | str:
        if self.proc is None:
            self.start()
        answer = self._ask(request, timeout)
        if isinstance(answer, str):
            self.stop()
        return answer

    def _ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | str:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            return f"died:{self.proc.wait()}"
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return "hang"
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return "hang"
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return f"died:{self.proc.wait()}"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return dict(json.loads(line))


if __name__ == "__main__":  # what Worker.start launches
    p = argparse.ArgumentParser(description="Answer one JSON line per request line on stdin (see Worker).")
    p.add_argument("--memory-limit-mib", type=int, required=True, help="the address-space ceiling (0: none)")
    worker(p.parse_args().memory_limit_mib)
