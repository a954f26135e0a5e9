"""The training objective: the task loss, a frozen teacher's outputs (distillation), or a mix of the two.

With weight ``w = config.distill`` the loss is ``(1 − w)·task(student, labels) + w·distill(student, teacher)``;
the task registry (:mod:`toolchain.training.tasks`) says what each term is (cross-entropy and ``T²·KL`` for
classifiers, L1 and L1 to the teacher's image for super-resolution). ``w = 1`` needs no labels, so a folder of
unlabelled images is enough to prune and quantize a pretrained network. The teacher is the float model before
pruning and quantization: it runs in eval mode without gradients, is never saved in checkpoints (it is rebuilt from
its weights file on resume) and, under DistributedDataParallel, each process keeps its own copy.
"""

from __future__ import annotations

import torch
from torch import nn

from runtime import ToolchainError

from ..config import TrainConfig
from ..data import DataBundle
from ..modeling import build_model, load_weights
from .tasks import Task

__all__ = ["Objective", "freeze_batch_norm", "teacher_path"]


def teacher_path(config: TrainConfig) -> str | None:
    """``--teacher``, else the float checkpoint the phase starts from (the float model before this phase)."""
    return config.teacher or getattr(config, "float_checkpoint", None)


class Objective:
    """``objective(output, x, y)``: the loss a training step minimises (see the module docstring)."""

    def __init__(self, task: Task, config: TrainConfig, teacher: nn.Module | None = None) -> None:
        self.task, self.weight, self.temperature = task, config.distill, config.temperature
        self.smoothing = config.label_smoothing
        self.teacher = teacher

    @classmethod
    def build(cls, task: Task, config: TrainConfig, bundle: DataBundle, device: torch.device) -> Objective:
        """The task loss alone, or with the teacher named by the config (built like the student, weights loaded)."""
        labelled = bundle.task != "classification" or bundle.num_classes > 0
        if not labelled and config.distill < 1 and config.epochs > 0:  # calibration alone needs no labels
            raise ToolchainError(
                f"data set {bundle.name!r} has no labels: train on a teacher's outputs with --distill 1"
            )
        if config.distill == 0 or config.epochs == 0:  # nothing to train: no teacher to build
            return cls(task, config)
        path = teacher_path(config)
        if path is None:
            raise ToolchainError("--distill needs a teacher: --teacher WEIGHTS (or --float-checkpoint)")
        teacher = load_weights(build_model(config.model, bundle, config.model_args), path)
        teacher.eval().requires_grad_(False)
        return cls(task, config, teacher.to(device))

    def __call__(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.teacher is None:
            return self.task.loss(out, y, self.smoothing)
        with torch.no_grad():
            target = self.teacher(x).float()
        distilled = self.task.distill(out, target, self.temperature)
        if self.weight == 1:
            return distilled
        return (1 - self.weight) * self.task.loss(out, y, self.smoothing) + self.weight * distilled


def freeze_batch_norm(model: nn.Module) -> int:
    """Put every batch-norm layer in eval mode (running statistics used and kept); returns how many."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.eval()
    return len(layers)
