"""The package graph is one-way: the layers of README "What is here", read from the source's import statements.

Every ``import`` counts, function-local ones included: an import inside a function is still a dependency, only a
later one. ``LAYERS`` lists the layers from the top; a module may import its own layer and the layers below it,
never one above. Within a layer no two modules (files) or sub-packages may import each other, directly or round a
loop.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("toolchain", "exporters", "models", "runtime")

# Top first. A module belongs to the first layer whose prefix matches its dotted name.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("application", ("toolchain",)),
    ("exporter", ("exporters",)),
    ("quantized model", ("models.quant",)),
    ("networks", ("models",)),
    ("runtime", ("runtime",)),
]


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules that ``module`` imports anywhere in its file (names resolved to modules)."""
    found = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known and name != module:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    known = project_modules()
    return {m: imports(m, p, known) for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def collapse(edges: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The graph between packages: module names cut to their first ``depth`` parts."""
    out: dict[str, set[str]] = {}
    for a, targets in edges.items():
        for b in targets:
            ka, kb = ".".join(a.split(".")[:depth]), ".".join(b.split(".")[:depth])
            if ka != kb:
                out.setdefault(ka, set()).add(kb)
    return out


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a, targets in graph().items()
        for b in targets
        if layer_of(b) < layer_of(a)
    ]
    assert not upward, upward


@pytest.mark.parametrize("depth", [1, 2, 9], ids=["top-level packages", "sub-packages", "modules"])
def test_no_import_cycles(depth: int) -> None:
    assert cycles(collapse(graph(), depth)) == []


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    """The checks above can fail: a planted loop and a planted upward edge are found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    edges = graph()
    assert "models.quant.prepare" in edges["exporters.ops"]  # imports are resolved to modules
    assert layer_of("runtime.sidecar") > layer_of("models.quant.freeze") > layer_of("exporters.graph")


def test_importing_the_exporter_loads_no_application_module() -> None:
    """``import exporters`` needs the quantized model's facts only: no training loop, data set or CLI."""
    code = "import sys, exporters; print(sorted(m for m in sys.modules if m.split('.')[0] == 'toolchain'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
