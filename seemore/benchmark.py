"""Loading SR benchmark sets (Set5, Set14, ... in the EDSR/BasicSR "benchmark" layout).

A set is a folder ``<name>/HR/<img>.png`` with ``<name>/LR_bicubic/X{s}/<img>x{s}.png``.
HR files are kept as stored (not cropped to a multiple of the scale); the LR image of an
H x W HR image is floor(H / s) x floor(W / s), and the metrics crop the HR top-left to
match (:func:`seemore.metrics.sr_metrics`). Missing LR files are made with the MATLAB-style
:func:`seemore.imresize.imresize`, which reproduces the distributed ones exactly.

Loaded sets are cached per (folder, scale) for the life of the process, so the training
loop's periodic validation reads each file once; the cached arrays are read-only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from seemore.imresize import imresize
from seemore.paths import DataError, bundled_images, note_fallback, resolve_data_root

__all__ = [
    "BUNDLED_MAX_SIDE",
    "BUNDLED_SET",
    "BenchmarkImage",
    "clear_cache",
    "list_benchmarks",
    "load_benchmark",
    "load_named_benchmark",
    "make_lr",
    "read_image",
]

BUNDLED_SET = "bundled"
# The bundled photos are up to 1000 px; a centre crop keeps validation on them quick.
BUNDLED_MAX_SIDE = 384
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass(frozen=True)
class BenchmarkImage:
    """One benchmark pair: ``hr`` as stored (H x W x 3 or H x W uint8), ``lr`` its bicubic downscale."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


_CACHE: dict[tuple[str, int], tuple[BenchmarkImage, ...]] = {}


def clear_cache() -> None:
    """Forget every loaded set (tests; data changed on disk)."""
    _CACHE.clear()


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """A uint8 H x W x 3 RGB or H x W gray array; :class:`DataError` naming the file otherwise."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I") or im.mode == "F":
                raise DataError(f"{path}: {im.mode} images (more than 8 bits) are not supported")
            if im.mode in ("1", "LA"):
                im = im.convert("L")
            elif im.mode not in ("L", "RGB"):
                im = im.convert("RGB")  # palette, RGBA, CMYK, YCbCr ...
            arr = np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: unreadable image ({reason})") from None
    return arr


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The benchmark LR of ``hr``: crop top-left to a multiple of ``scale``, MATLAB bicubic 1/scale."""
    h, w = hr.shape[:2]
    if h < scale or w < scale:
        raise DataError(f"image of {h}x{w} is too small for x{scale}")
    return imresize(hr[: h - h % scale, : w - w % scale], 1.0 / scale)


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


def list_benchmarks(data_root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the set folders under ``<data_root>/benchmark`` (empty without a data root)."""
    root = resolve_data_root(data_root)
    if root is None or not (root / "benchmark").is_dir():
        return []
    return sorted(p.name for p in (root / "benchmark").iterdir() if (p / "HR").is_dir())


def _find_set_folder(name_or_path: str | os.PathLike[str], root: Path | None) -> Path | None:
    """The set's folder, or None when there is no data root and ``name_or_path`` is a name."""
    text = str(name_or_path)
    as_path = Path(text).expanduser()
    looks_like_path = os.sep in text or (os.altsep is not None and os.altsep in text) or text.startswith(".")
    if as_path.is_dir() and ((as_path / "HR").is_dir() or looks_like_path):
        return as_path
    if looks_like_path:
        raise DataError(f"{text}: no such benchmark folder")
    if root is None:
        return None
    bench = root / "benchmark"
    if (bench / text).is_dir():
        return bench / text
    if bench.is_dir():
        # Accept "set5" for "Set5".
        matches = [p for p in bench.iterdir() if p.is_dir() and p.name.lower() == text.lower()]
        if len(matches) == 1:
            return matches[0]
    available = ", ".join(list_benchmarks(root)) or "none"
    raise DataError(f"unknown benchmark set {text!r} (available in {bench}: {available})")


def _load_folder(folder: Path, scale: int) -> tuple[BenchmarkImage, ...]:
    hr_dir = folder / "HR"
    if not hr_dir.is_dir():
        raise DataError(f"{folder}: no HR/ folder (expected HR/ and LR_bicubic/X{scale}/)")
    hr_files = sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not hr_files:
        raise DataError(f"{hr_dir}: no images")
    lr_dir = folder / "LR_bicubic" / f"X{scale}"
    images: list[BenchmarkImage] = []
    made = 0
    for hr_path in hr_files:
        hr = read_image(hr_path)
        stem = f"{hr_path.stem}x{scale}"
        candidates = [lr_dir / f"{stem}{hr_path.suffix}", lr_dir / f"{stem}.png"]
        lr_path = next((p for p in candidates if p.is_file()), None)
        if lr_path is None:
            lr = make_lr(hr, scale)
            made += 1
        else:
            lr = read_image(lr_path)
            want = (hr.shape[0] // scale, hr.shape[1] // scale) + hr.shape[2:]
            if lr.shape != want:
                raise DataError(
                    f"{lr_path}: shape {lr.shape} does not fit HR {hr.shape} at x{scale} (expected {want})"
                )
        images.append(BenchmarkImage(hr_path.stem, _readonly(hr), _readonly(lr)))
    if made:
        print(
            f"note: {made} of {len(hr_files)} LR images missing in {lr_dir}; "
            "made them with MATLAB-style bicubic imresize",
            file=sys.stderr,
        )
    return tuple(images)


def _load_bundled(scale: int) -> tuple[BenchmarkImage, ...]:
    images: list[BenchmarkImage] = []
    for path in bundled_images():
        hr = read_image(path)
        h, w = hr.shape[:2]
        ch, cw = min(h, BUNDLED_MAX_SIDE), min(w, BUNDLED_MAX_SIDE)
        top, left = (h - ch) // 2, (w - cw) // 2
        hr = hr[top : top + ch, left : left + cw]
        images.append(BenchmarkImage(path.stem, _readonly(hr), _readonly(make_lr(hr, scale))))
    return tuple(images)


def load_named_benchmark(
    name_or_path: str | os.PathLike[str],
    scale: int,
    data_root: str | os.PathLike[str] | None = None,
) -> tuple[str, list[BenchmarkImage]]:
    """Like :func:`load_benchmark`, also returning the set's display name (folder name or ``"bundled"``)."""
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise DataError(f"scale must be a positive integer, got {scale!r}")
    root = resolve_data_root(data_root)
    folder = _find_set_folder(name_or_path, root)
    key = (str(folder.resolve()) if folder is not None else f"<{BUNDLED_SET}>", scale)
    if key not in _CACHE:
        if folder is None:
            note_fallback(f"benchmark set {name_or_path}")
            _CACHE[key] = _load_bundled(scale)
        else:
            _CACHE[key] = _load_folder(folder, scale)
    return (BUNDLED_SET if folder is None else folder.name), list(_CACHE[key])


def load_benchmark(
    name_or_path: str | os.PathLike[str],
    scale: int,
    data_root: str | os.PathLike[str] | None = None,
) -> list[BenchmarkImage]:
    """Load a benchmark set at ``scale``: a set name under ``<data_root>/benchmark/`` or a folder path.

    Without any data root (see :func:`seemore.paths.resolve_data_root`), a set name gives the
    bundled sample photos (centre-cropped to :data:`BUNDLED_MAX_SIDE`, LR made by
    :func:`make_lr`) as a set named ``"bundled"``, after a note on stderr. Raises
    :class:`DataError` (one line) for an unknown set, an empty folder or an unreadable image.
    Results are cached per (folder, scale); the arrays are read-only.
    """
    return load_named_benchmark(name_or_path, scale, data_root)[1]
