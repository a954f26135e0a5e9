"""Task metrics: PSNR and SSIM on Y with the border crop."""

import torch
import torch.nn.functional as F

from toolchain.training.tasks import TASKS, psnr, ssim


def test_psnr_and_ssim_of_identical_and_degraded_images() -> None:
    g = torch.Generator().manual_seed(0)
    hr = F.avg_pool2d(torch.rand(2, 1, 66, 66, generator=g), 3, 1)  # smooth-ish [0, 1] images
    lr = F.interpolate(hr, scale_factor=0.5, mode="bicubic", align_corners=False)
    up = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(ssim(hr, hr, 2), torch.ones(2, dtype=torch.float64))
    assert (psnr(hr, hr, 2) > 100).all()
    assert (ssim(up, hr, 2) < 0.99).all() and (psnr(up, hr, 2) < 40).all()
    sums = TASKS["super_resolution"].batch_metrics(up, hr, 2)
    assert abs(sums["ssim"] - ssim(up, hr, 2).sum().item()) < 1e-9 and "psnr" in sums


def test_headline_is_the_tasks_own_metric() -> None:
    from toolchain.training.tasks import headline

    assert headline({"top5": 99.0, "top1": 91.5}) == ("top1", 91.5)
    assert headline({"psnr": 30.25, "ssim": 0.9}) == ("psnr", 30.25)
    assert headline({"loss": 0.3}) is None
