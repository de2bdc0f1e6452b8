"""Real images for artifact checks (never random tensors).

The exporter's check input (:func:`real_input`) is a crop of a benchmark HR photo: it only
compares an artifact with its own torch model. Calibration images for INT8 come from the
training set instead (:func:`seemore.quantize.calibration_images`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from seemore.common.tensors import image_to_tensor
from seemore.paths import DataError, bundled_images, note_fallback, resolve_data_root

def load_rgb(path: str | Path) -> Tensor:
    """Read an image as a (1, 3, H, W) float tensor in [0, 1]; grey images are replicated to RGB."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None
    return image_to_tensor(arr)


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
