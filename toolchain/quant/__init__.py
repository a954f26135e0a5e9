"""Learning the quantized model: the MSQE regularizer, the weight-step rules and the ``qat`` training recipe.

What a quant-aware model is (quantizers, ``prepare_qat``, calibration, ``freeze``) lives one layer down in
:mod:`models.quant`, shared with the exporter; the names are re-exported here for the library API.
"""

from models.quant.freeze import FrozenAct, FrozenModel, FrozenWeight, freeze
from models.quant.prepare import ActQuant, calibrate, prepare_qat, weight_bits, weight_step
from models.quant.quantizers import max_level, msqe_optimal_step, quantize_levels

from .config import QuantConfig
from .ptq import PTQ_STAGES, CalibrationBatches, reconstruct
from .regularizer import MSQERegularizer, quant_weight_layers

__all__ = [
    "PTQ_STAGES",
    "ActQuant",
    "CalibrationBatches",
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
    "reconstruct",
    "weight_bits",
    "weight_step",
]
