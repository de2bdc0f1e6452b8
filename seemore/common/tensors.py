"""Image <-> tensor conversions and the tensor PSNR used by every parity comparison."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def image_to_tensor(img: np.ndarray) -> Tensor:
    """uint8 image (H x W x 3, or H x W grey fed as three equal channels) -> (1, 3, H, W) float in [0, 1]."""
    rgb = np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def tensor_to_image(sr: Tensor) -> np.ndarray:
    """(1, 3, H, W) float output -> H x W x 3 uint8 (clamp to [0, 1], x255, round), as evaluation does."""
    return sr[0].detach().float().clamp(0, 1).mul(255).round().permute(1, 2, 0).to(torch.uint8).cpu().numpy()


def psnr_db(a: Tensor, b: Tensor, peak: float = 1.0) -> float:
    """PSNR in dB of two tensors on a [0, peak] scale, in float64 (``inf`` when equal)."""
    mse = torch.mean((a.detach().double() - b.detach().double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)


def max_abs(a: Tensor, b: Tensor) -> float:
    """Largest absolute difference of two tensors."""
    return (a.detach().double() - b.detach().double()).abs().max().item()
