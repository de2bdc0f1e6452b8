"""Real images for quantization calibration and artifact checks (never random tensors).

Calibration uses the benchmark LR images (Set5, Set14 ``LR_bicubic/X{scale}``): they are
what the model sees in evaluation, and whole images give the router its real
image-level statistics. Without a data root, scikit-image's bundled photographs are
bicubic-downscaled by the scale instead (and the user is told).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from seemore.paths import DataError, bundled_images, note_fallback, resolve_data_root

CALIBRATION_SETS: tuple[str, ...] = ("Set5", "Set14")


def load_rgb(path: str | Path) -> Tensor:
    """Read an image as a (1, 3, H, W) float tensor in [0, 1]; grey images are replicated to RGB."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except OSError as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def _benchmark_lr_paths(root: Path, scale: int, sets: tuple[str, ...]) -> list[Path]:
    paths: list[Path] = []
    for name in sets:
        folder = root / "benchmark" / name / "LR_bicubic" / f"X{scale}"
        paths.extend(sorted(folder.glob("*.png")))
    return paths


def _downscaled(path: Path, scale: int) -> Tensor:
    """A bundled photo bicubic-downscaled by ``scale``, so it looks like an LR input."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        small = rgb.resize((max(1, rgb.width // scale), max(1, rgb.height // scale)), Image.BICUBIC)
        arr = np.asarray(small, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def calibration_images(
    scale: int,
    data_root: str | Path | None = None,
    min_size: int = 32,
    max_size: int = 256,
    limit: int | None = None,
) -> list[Tensor]:
    """Real LR images as (1, 3, h, w) tensors for PTQ calibration.

    Images with a side below ``min_size`` are skipped (the dynamic calibration graph
    needs it); larger ones are centre-cropped to at most ``max_size`` per side to bound
    the calibration time. ``limit`` keeps the first images only.
    """
    root = resolve_data_root(data_root)
    tensors: list[Tensor] = []
    if root is not None:
        paths = _benchmark_lr_paths(root, scale, CALIBRATION_SETS)
        if not paths:
            expected = f"benchmark/Set5/LR_bicubic/X{scale}"
            raise DataError(f"{root}: no benchmark LR images for x{scale} (expected {expected})")
        tensors = [load_rgb(p) for p in paths]
    else:
        note_fallback("calibration")
        tensors = [_downscaled(p, scale) for p in bundled_images()]
    out = [center_crop(t, min(t.shape[-2], max_size), min(t.shape[-1], max_size)) for t in tensors]
    out = [t for t in out if min(t.shape[-2:]) >= min_size]
    if not out:
        raise DataError(f"no calibration image has both sides >= {min_size} pixels")
    return out[:limit] if limit is not None else out


def center_crop(x: Tensor, height: int, width: int) -> Tensor:
    """Centre crop of an NCHW tensor to ``height`` x ``width`` (both <= the tensor's size)."""
    h, w = x.shape[-2:]
    top, left = (h - height) // 2, (w - width) // 2
    return x[..., top : top + height, left : left + width].contiguous()


def real_input(height: int, width: int, batch: int = 1, data_root: str | Path | None = None) -> Tensor:
    """A (batch, 3, height, width) input cut from real photographs, for artifact checks.

    Uses the largest Set14/Set5 HR images (resized to cover the size when they are
    smaller, then centre-cropped), a different image per batch element; without a data
    root, scikit-image's bundled photos.
    """
    root = resolve_data_root(data_root)
    if root is not None:
        paths = [p for s in ("Set14", "Set5") for p in sorted((root / "benchmark" / s / "HR").glob("*.png"))]
    else:
        note_fallback("the artifact check image")
        paths = bundled_images()
    if not paths:
        raise DataError("no HR benchmark images found for the artifact check")
    sizes = []
    for p in paths:
        with Image.open(p) as img:
            sizes.append((img.width * img.height, p))
    chosen = [p for _, p in sorted(sizes, key=lambda s: (-s[0], str(s[1])))]
    crops = []
    for i in range(batch):
        img = load_rgb(chosen[i % len(chosen)])
        h, w = img.shape[-2:]
        grow = max(height / h, width / w)
        if grow > 1:
            new = (int(np.ceil(h * grow)), int(np.ceil(w * grow)))
            img = torch.nn.functional.interpolate(img, size=new, mode="bicubic", align_corners=False).clamp(0, 1)
        crops.append(center_crop(img, height, width))
    return torch.cat(crops)
