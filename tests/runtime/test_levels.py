"""The largest level of a b-bit weight, L = 2^(b−1) − 1, has one home: :func:`runtime.levels.max_level` (issue 31,
item 6: it used to be computed in four places, the quantizers, the sidecar's multiplier check, the codecs and the
weight histogram plot)."""

from __future__ import annotations

import ast
from pathlib import Path

from runtime.levels import level_limit, max_level
from tests.conftest import ROOT

PACKAGES = ("runtime", "models", "toolchain", "exporters", "benchmarks")  # the tests keep their own oracles
HOME = Path("runtime") / "levels.py"


def _is_one(node: ast.AST, value: int = 1) -> bool:
    return isinstance(node, ast.Constant) and node.value == value


def _largest_level(node: ast.AST) -> bool:
    """``2 ** (x − 1) − 1`` or ``(1 << (x − 1)) − 1``, however ``x`` is spelled."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and _is_one(node.right)):
        return False
    power = node.left
    if not (isinstance(power, ast.BinOp) and isinstance(power.right, ast.BinOp)):
        return False
    exponent = power.right
    minus_one = isinstance(exponent.op, ast.Sub) and _is_one(exponent.right)
    shape = (isinstance(power.op, ast.Pow) and _is_one(power.left, 2)) or (
        isinstance(power.op, ast.LShift) and _is_one(power.left)
    )
    return minus_one and shape


def test_the_largest_level_is_computed_in_runtime_levels_only() -> None:
    copies = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.relative_to(ROOT) == HOME:
                continue
            tree = ast.parse(path.read_text(), str(path))
            copies += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(tree) if _largest_level(n)]
    assert not copies, f"2^(bits-1) - 1 computed outside {HOME} (call runtime.levels.max_level): {copies}"


def test_the_home_is_the_narrow_range_bound() -> None:
    assert [max_level(b) for b in range(2, 9)] == [1, 3, 7, 15, 31, 63, 127]
    assert all(level_limit(b) == max_level(b) for b in range(2, 9))
    source = (ROOT / HOME).read_text()
    assert sum(_largest_level(n) for n in ast.walk(ast.parse(source))) == 1
