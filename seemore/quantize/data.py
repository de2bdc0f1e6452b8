"""Real training images for calibration and QAT (never the evaluation sets, never random data).

Calibration and training only see ``<data_root>/train`` (T91 and BSD200 here), degraded with
MATLAB bicubic; without a data root the bundled scikit-image photos are used and the user is
told.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from seemore.common.tensors import image_to_tensor
from seemore.paths import DataError, bundled_images, note_fallback, resolve_data_root
from seemore.train.data import TrainImage, degrade, load_training_images, read_rgb

DEFAULT_CALIBRATION_IMAGES = 32


@dataclass
class TrainingData:
    """Real training images for calibration and QAT, with where they came from."""

    images: list[TrainImage]
    source: str
    folders: list[str]
    fallback: bool = False

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (recorded in results and contracts)."""
        return {"source": self.source, "folders": self.folders, "images": len(self.images), "fallback": self.fallback}


def load_training_data(scale: int, data_root: str | Path | None = None, progress: bool = True) -> TrainingData:
    """Training images from ``<data_root>/train`` (HR, degraded with MATLAB bicubic).

    Never the benchmark sets: they are what the quantized model is evaluated on. Without a
    data root, scikit-image's bundled photos are degraded instead (with a note on stderr).
    """
    root = resolve_data_root(data_root)
    if root is not None:
        folder = root / "train"
        if not folder.is_dir():
            raise DataError(f"{root}: no train/ folder with training images (e.g. train/T91, train/BSD200)")
        subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
        images = load_training_images([folder], scale, progress=progress)
        return TrainingData(images, f"{folder} ({', '.join(subfolders) or 'images'})", [str(folder)])
    note_fallback("quantization calibration and QAT")
    images = []
    for path in bundled_images():
        hr, lr = degrade(read_rgb(path), scale)
        images.append(TrainImage(f"bundled/{path.stem}", hr, lr))
    return TrainingData(images, "scikit-image bundled photos (no data root)", [], fallback=True)


def ptq_calibration_images(
    data: TrainingData, count: int, min_side: int, max_side: int = 128, seed: int = 0
) -> list[Tensor]:
    """``count`` whole LR training images (centre-cropped to ``max_side``) for PTQ.

    Whole images rather than patches give the histogram observers the image-level
    statistics (flat skies next to textures) the model sees at inference. Images with a
    side below ``min_side`` are skipped; the choice is a seeded shuffle.
    """
    order = np.random.default_rng(seed).permutation(len(data.images))
    out: list[Tensor] = []
    for i in order:
        lr = data.images[int(i)].lr
        h, w = lr.shape[:2]
        if min(h, w) < min_side:
            continue
        ch, cw = min(h, max_side), min(w, max_side)
        top, left = (h - ch) // 2, (w - cw) // 2
        out.append(image_to_tensor(lr[top : top + ch, left : left + cw]))
        if len(out) == count:
            break
    if not out:
        raise DataError(f"no training image has both LR sides >= {min_side} pixels")
    return out


def calibration_images(
    scale: int, data_root: str | Path | None = None, min_size: int = 32, max_size: int = 128,
    limit: int | None = None,
) -> list[Tensor]:
    """``limit`` (default 32) whole LR training images as (1, 3, h, w) tensors for PTQ.

    Images with a side below ``min_size`` are skipped (the dynamic calibration graph needs
    it); larger ones are centre-cropped to at most ``max_size`` per side to bound the
    calibration time. The choice is a seeded shuffle, so a repeated call gives the same images.
    """
    data = load_training_data(scale, data_root, progress=False)
    count = DEFAULT_CALIBRATION_IMAGES if limit is None else limit
    return ptq_calibration_images(data, count, min_size, max_side=max_size)
