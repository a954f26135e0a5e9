"""The quantization rules (``models.quant.prepare``) and the export ops (``exporters.ops``) are two tables keyed the
same way: every op that prepare_qat accepts must have an emitter, and both tables must agree on which ops keep their
input's quantization grid. A rule added to one table alone fails here, not in a user's export."""

from __future__ import annotations

from brevitas.nn import QuantConv2d, QuantConvTranspose2d, QuantLinear
from torch import nn

from exporters.ops import FUNCTION_OPS, METHOD_OPS, MODULE_OPS
from models.quant.prepare import FUNCTION_RULES, METHOD_RULES, MODULE_RULES, QUANT_WEIGHT_TYPES, ActQuant

# The float layers prepare_qat swaps for Brevitas layers, and what they become.
SWAPS = {nn.Conv2d: QuantConv2d, nn.ConvTranspose2d: QuantConvTranspose2d, nn.Linear: QuantLinear}
NOT_A_TENSOR = {"size"}  # returns Python ints read from the traced shapes: no grid to keep or lose


def test_every_prepared_module_has_an_emitter() -> None:
    weighted = {t for t, rule in MODULE_RULES.items() if rule.kind == "weighted"}
    assert weighted == set(SWAPS) and set(SWAPS.values()) == set(QUANT_WEIGHT_TYPES)
    expected = {SWAPS.get(t, t) for t in MODULE_RULES} | {ActQuant}  # ActQuant: inserted by prepare_qat itself
    assert set(MODULE_OPS) == expected


def test_functions_and_methods_are_the_same_sets() -> None:
    assert set(FUNCTION_OPS) == set(FUNCTION_RULES)
    assert set(METHOD_OPS) == set(METHOD_RULES)


def test_grid_keeping_agrees() -> None:
    pairs = [
        *((rule, MODULE_OPS[SWAPS.get(t, t)]) for t, rule in MODULE_RULES.items()),
        *((rule, FUNCTION_OPS[f]) for f, rule in FUNCTION_RULES.items()),
        *((rule, METHOD_OPS[m]) for m, rule in METHOD_RULES.items() if m not in NOT_A_TENSOR),
    ]
    for rule, entry in pairs:
        assert (rule.kind == "keep") == entry.keeps_grid, (rule, entry)
