"""Quantization: Brevitas quantizers, ``prepare_qat``, calibration, the MSQE regularizer and ``freeze``."""

from .config import QuantConfig
from .freeze import FrozenAct, FrozenModel, FrozenWeight, freeze
from .prepare import ActQuant, calibrate, prepare_qat, weight_bits, weight_step
from .quantizers import max_level, msqe_optimal_step, quantize_levels
from .regularizer import MSQERegularizer, quant_weight_layers

__all__ = [
    "ActQuant",
    "FrozenAct",
    "FrozenModel",
    "FrozenWeight",
    "MSQERegularizer",
    "QuantConfig",
    "calibrate",
    "freeze",
    "max_level",
    "msqe_optimal_step",
    "prepare_qat",
    "quant_weight_layers",
    "quantize_levels",
    "weight_bits",
    "weight_step",
]
