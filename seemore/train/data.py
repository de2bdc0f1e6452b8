"""Training data: image folders, bicubic degradation, and reproducible patch batches.

A training folder is one of:

* the standard layout: ``HR/`` plus ``LR_bicubic/X{s}/{name}x{s}.png`` (LR files used as-is;
  missing ones are made from HR);
* a folder of HR images, degraded on the fly with MATLAB-style antialiased bicubic
  downscaling (:func:`seemore.imresize.imresize`), which reproduces the benchmark
  ``LR_bicubic`` files to within rounding;
* a folder of such folders (one level), e.g. ``train/`` holding ``T91/`` and ``BSD200/``.

Every image is decoded and degraded once and kept in memory (uint8), which suits the SR
training sets this project uses (291 images, ~60 MB). Batches are a pure function of
``(seed, rank, iteration)``, so a resumed run sees exactly the batches an uninterrupted run
would have seen, with no sampler state to save.

Images smaller than the patch are mirror-padded (:class:`PatchSampler`), not refused: the
classic sets hold such images (51 of T91's 91 are below a 48-pixel LR patch at x4, t20 is
19x19 LR; BSD200 has none), and the shipped checkpoint was trained that way. The trainer says
how many are padded and refuses a patch that no image holds (:func:`largest_patch`), where
every patch would be mostly mirrored copies.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from seemore.common.progress import progress as progress_bar
from seemore.imresize import imresize
from seemore.paths import DataError

IMAGE_SUFFIXES = frozenset({".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class TrainImage:
    """One HR image and its LR counterpart (uint8 HxWx3, HR exactly ``scale`` times LR)."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to uint8 RGB; a one-line :class:`DataError` if it cannot be read."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc.__class__.__name__})") from None


def _image_sources(folder: Path, scale: int) -> list[tuple[Path, Path | None]]:
    """(HR path, LR path or None) pairs for one training folder, following the layouts above."""
    if not folder.is_dir():
        raise DataError(f"{folder}: training data folder does not exist")
    hr_dir = folder / "HR"
    if hr_dir.is_dir():
        lr_dir = folder / "LR_bicubic" / f"X{scale}"
        pairs = []
        for hr in list_images(hr_dir):
            lr = lr_dir / f"{hr.stem}x{scale}{hr.suffix}"
            pairs.append((hr, lr if lr.is_file() else None))
        if not pairs:
            raise DataError(f"{hr_dir}: no images found")
        return pairs
    images = list_images(folder)
    if images:
        return [(p, None) for p in images]
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir())
    pairs = [pair for sub in subfolders for pair in _image_sources(sub, scale)] if subfolders else []
    if not pairs:
        raise DataError(f"{folder}: no images found")
    return pairs


def degrade(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop HR to a multiple of ``scale`` and make its MATLAB-bicubic LR (uint8, rounded)."""
    h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    if h == 0 or w == 0:
        raise DataError(f"image of size {hr.shape[1]}x{hr.shape[0]} is smaller than the scale {scale}")
    hr = np.ascontiguousarray(hr[:h, :w])
    return hr, imresize(hr, 1.0 / scale)


def load_training_images(folders: Sequence[Path], scale: int, progress: bool = True) -> list[TrainImage]:
    """Read and degrade every image of ``folders`` once (see the module docstring for layouts)."""
    sources = [pair for folder in folders for pair in _image_sources(Path(folder), scale)]
    images = []
    # progress_bar: a live bar on a terminal, a summary line in a log (not one line per redraw).
    for hr_path, lr_path in progress_bar(sources, desc="loading training images", unit="img", enabled=progress,
                                         leave=False):
        hr = read_rgb(hr_path)
        if lr_path is None:
            hr, lr = degrade(hr, scale)
        else:
            lr = read_rgb(lr_path)
            hr = hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
            if hr.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale):
                raise DataError(f"{lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} does not fit HR {hr_path.name}")
        images.append(TrainImage(f"{hr_path.parent.name}/{hr_path.stem}", hr, lr))
    return images


def largest_patch(images: Sequence[TrainImage]) -> tuple[int, TrainImage]:
    """The largest LR patch side that some image holds without padding, and that image."""
    best = max(images, key=lambda im: min(im.lr.shape[:2]))
    return min(best.lr.shape[:2]), best


def padded_images(images: Sequence[TrainImage], patch_size: int) -> list[TrainImage]:
    """The images whose LR side is below ``patch_size`` (mirror-padded by :class:`PatchSampler`)."""
    return [im for im in images if min(im.lr.shape[:2]) < patch_size]


def padding_bytes(images: Sequence[TrainImage], patch_size: int, scale: int) -> int:
    """Memory the padded copies of :class:`PatchSampler` add on top of the loaded images (uint8 LR + HR)."""
    extra = 0
    for im in images:
        h, w = im.lr.shape[:2]
        grown = max(h, patch_size) * max(w, patch_size)
        if grown > h * w:  # _pad_to copies the whole image, so a padded one costs its new size
            extra += 3 * grown * (1 + scale * scale)
    return extra


def _pad_to(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Mirror-pad an image up to at least (h, w) so small images still yield full patches."""
    ph, pw = max(0, h - img.shape[0]), max(0, w - img.shape[1])
    if ph == 0 and pw == 0:
        return img
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="symmetric")


class PatchSampler:
    """Random aligned LR/HR patches with flips and 90-degree rotations.

    An image smaller than the patch is mirror-padded up to it once, up front (see the module
    docstring for why it is not refused; callers that want a limit check :func:`largest_patch`).

    Batch ``i`` depends only on ``(seed, rank, i)``: resuming at iteration ``i`` replays the
    exact data stream, and ranks of a distributed run draw independent batches.
    """

    def __init__(self, images: Sequence[TrainImage], scale: int, patch_size: int, seed: int = 0,
                 augment: bool = True) -> None:
        if not images:
            raise DataError("no training images")
        self.images = list(images)
        self.scale = scale
        self.patch = patch_size
        self.seed = seed
        self.augment = augment
        # Pad once up front: the per-batch path then never allocates for small images.
        hp = patch_size * scale
        self._padded = [(_pad_to(im.lr, patch_size, patch_size), _pad_to(im.hr, hp, hp)) for im in self.images]

    def batch(self, iteration: int, batch_size: int, rank: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(LR, HR) float32 NCHW arrays in [0, 1] for one training step."""
        rng = np.random.default_rng([self.seed, rank, iteration])
        p, s = self.patch, self.scale
        lr_out = np.empty((batch_size, p, p, 3), np.uint8)
        hr_out = np.empty((batch_size, p * s, p * s, 3), np.uint8)
        for b in range(batch_size):
            lr, hr = self._padded[rng.integers(len(self._padded))]
            y = int(rng.integers(lr.shape[0] - p + 1))
            x = int(rng.integers(lr.shape[1] - p + 1))
            lr_patch = lr[y : y + p, x : x + p]
            hr_patch = hr[y * s : (y + p) * s, x * s : (x + p) * s]
            if self.augment:
                hflip, vflip, transpose = rng.integers(2, size=3)
                lr_patch, hr_patch = (_augment(a, hflip, vflip, transpose) for a in (lr_patch, hr_patch))
            lr_out[b] = lr_patch
            hr_out[b] = hr_patch
        to_chw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0  # noqa: E731
        return to_chw(lr_out), to_chw(hr_out)


def _augment(a: np.ndarray, hflip: int, vflip: int, transpose: int) -> np.ndarray:
    """Flips and transpose: together the 8 symmetries of the square (incl. 90-degree turns)."""
    if hflip:
        a = a[:, ::-1]
    if vflip:
        a = a[::-1]
    if transpose:
        a = a.transpose(1, 0, 2)
    return a


class Prefetcher:
    """Builds the next batches on a background thread so the training step never waits.

    numpy releases the GIL for the copies, so on 2 cores this overlaps almost fully.
    """

    def __init__(self, sampler: PatchSampler, start: int, stop: int, batch_size: int, rank: int = 0,
                 depth: int = 3) -> None:
        self._queue: queue.Queue[tuple[np.ndarray, np.ndarray]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(sampler, start, stop, batch_size, rank), daemon=True
        )
        self._thread.start()

    def _run(self, sampler: PatchSampler, start: int, stop: int, batch_size: int, rank: int) -> None:
        try:
            self._produce(sampler, start, stop, batch_size, rank)
        except BaseException as exc:  # surfaced to the consumer in __next__
            self._error = exc

    def _produce(self, sampler: PatchSampler, start: int, stop: int, batch_size: int, rank: int) -> None:
        for it in range(start, stop):
            item = sampler.batch(it, batch_size, rank)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set():
                return

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        while True:
            try:
                return self._queue.get(timeout=1.0)
            except queue.Empty:
                if not self._thread.is_alive():
                    if self._error is not None:
                        raise self._error
                    raise StopIteration from None

    def close(self) -> None:
        """Stop the background thread."""
        self._stop.set()
