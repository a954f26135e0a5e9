"""Task definitions: the training loss and the evaluation metrics of each kind of model, by name.

* classification: cross-entropy (optionally label-smoothed) over the labelled samples (label −1 marks an unlabelled
  image); top-1 and top-5 accuracy in percent over the labelled samples. Distillation: ``T²·KL(p_t ‖ p_s)`` between
  the teacher's and the student's softmax at temperature T (Hinton et al. 2015; T² keeps the gradient scale).
* super_resolution: L1 loss on Y; PSNR in dB, ``10 log10(1 / MSE)`` on [0, 1] images after clamping, with a border
  of ``scale`` pixels cropped (the field's convention), averaged over images. Distillation: L1 to the teacher's
  output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["TASKS", "Task"]


@dataclass(frozen=True)
class Task:
    """``loss(output, target, smoothing)`` for training; ``distill(output, teacher_output, temperature)`` trains on a
    teacher's outputs instead of labels; ``batch_metrics`` returns sums to be divided by ``count``."""

    name: str
    loss: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    batch_metrics: Callable[[torch.Tensor, torch.Tensor, int], dict[str, float]]
    count: Callable[[torch.Tensor], int]
    headline: str
    distill: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def _ce(out: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    return F.cross_entropy(out, target, label_smoothing=smoothing, ignore_index=-1)


def _kl(out: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    log_p = F.log_softmax(out / temperature, dim=1)
    log_q = F.log_softmax(teacher / temperature, dim=1)
    return F.kl_div(log_p, log_q, reduction="batchmean", log_target=True) * temperature**2


def _topk(out: torch.Tensor, target: torch.Tensor, _: int) -> dict[str, float]:
    labelled = target >= 0  # -1 marks unlabelled images (calibration-only data sets)
    out, target = out[labelled], target[labelled]
    k = min(5, out.shape[1])
    hits = out.topk(k, dim=1).indices == target[:, None]
    return {
        "top1": 100.0 * hits[:, 0].sum().item(),
        "top5": 100.0 * hits.any(dim=1).sum().item(),
        "loss": F.cross_entropy(out, target, reduction="sum").item(),
    }


def _l1(out: torch.Tensor, target: torch.Tensor, _: float) -> torch.Tensor:
    return F.l1_loss(out, target)  # also the distillation loss: the teacher's image is the target


def psnr(out: torch.Tensor, target: torch.Tensor, border: int) -> torch.Tensor:
    """Per-image PSNR (dB) of [0, 1] images with ``border`` pixels cropped on each side."""
    if border:
        out, target = out[..., border:-border, border:-border], target[..., border:-border, border:-border]
    mse = ((out.clamp(0, 1) - target) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ssim(out: torch.Tensor, target: torch.Tensor, border: int) -> torch.Tensor:
    """Per-image SSIM of [0, 1] single-channel images, ``border`` cropped: scikit-image's ``structural_similarity``
    with the settings of Wang et al. 2004 (Gaussian window σ = 1.5, population covariance), as SR papers report it.
    """
    from skimage.metrics import structural_similarity

    if border:
        out, target = out[..., border:-border, border:-border], target[..., border:-border, border:-border]
    a, b = out.clamp(0, 1).detach().cpu().numpy(), target.detach().cpu().numpy()
    values = [
        structural_similarity(x[0], y[0], data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        for x, y in zip(a, b)
    ]
    return torch.tensor(values, dtype=torch.float64)


def _sr_metrics(out: torch.Tensor, target: torch.Tensor, scale: int) -> dict[str, float]:
    return {
        "psnr": psnr(out, target, scale).sum().item(),
        "ssim": ssim(out, target, scale).sum().item(),
        "loss": F.l1_loss(out, target, reduction="none").flatten(1).mean(1).sum().item(),
    }


TASKS: dict[str, Task] = {
    "classification": Task("classification", _ce, _topk, lambda t: int((t >= 0).sum()), "top1", _kl),
    "super_resolution": Task("super_resolution", _l1, _sr_metrics, lambda t: len(t), "psnr", _l1),
}


def headline(metrics: dict[str, Any]) -> tuple[str, float] | None:
    """The first task headline (top-1, PSNR) that ``metrics`` holds, with its value; ``None`` when it holds none."""
    for task in TASKS.values():
        if task.headline in metrics:
            return task.headline, float(metrics[task.headline])
    return None
