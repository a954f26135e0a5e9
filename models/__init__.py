"""Float model definitions and the model registry (torch only)."""

# Imported for their side effect: each module registers its models with the registry.
from . import (  # noqa: F401
    efficientnet,
    lenet,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    resnet,
    shufflenet_v1,
    shufflenet_v2,
    super_resolution,
    vit,
)
from .registry import ModelSpec, UnknownModelError, create_model, get_model_spec, list_models, register_model

__all__ = ["ModelSpec", "UnknownModelError", "create_model", "get_model_spec", "list_models", "register_model"]
