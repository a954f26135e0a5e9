"""The quant-aware form of a network: Brevitas quantizers, ``prepare_qat``, calibration and ``freeze``.

This is what an exported model *is* (bit-widths, integer levels, steps), below both the exporter that writes it
(:mod:`exporters`) and the training that learns it (:mod:`toolchain.quant`), so neither has to import the other.
"""

from .freeze import FrozenAct, FrozenModel, FrozenWeight, freeze
from .prepare import ActQuant, BitSettings, calibrate, prepare_qat, weight_bits, weight_step
from .quantizers import max_level, msqe_optimal_step, quantize_levels

__all__ = [
    "ActQuant",
    "BitSettings",
    "FrozenAct",
    "FrozenModel",
    "FrozenWeight",
    "calibrate",
    "freeze",
    "max_level",
    "msqe_optimal_step",
    "prepare_qat",
    "quantize_levels",
    "weight_bits",
    "weight_step",
]
