"""Standard SR evaluation: Y-channel PSNR/SSIM of a model (or bicubic) on benchmark sets.

Library: :func:`evaluate_model` (also the training loop's validation) and
:func:`evaluate_bicubic` return an :class:`EvalReport`. CLI::

    python -m seemore.evaluate --model seemore_t_x4 --sets Set5 Set14 --json runs/eval.json
    python -m seemore.evaluate --bicubic --scale 2

How images are run (BasicSR's test path): each whole LR image, no padding or tiling, as
float32 RGB in [0, 1]; the output is clamped to [0, 1], multiplied by 255 and rounded to
uint8 before the metrics (:func:`seemore.metrics.sr_metrics`).

Grayscale images (Set14 "bridge"): the LR channel is fed to the model as three equal
channels, and the RGB output is brought back to the gray scale with full-range BT.601 luma
(0.299 R + 0.587 G + 0.114 B, which returns the channel exactly when the channels agree)
and compared with the gray HR on that channel. That is the scale on which the papers'
bicubic rows are computed, so a model's number on "bridge" is comparable with bicubic's.
BasicSR's own validation instead loads gray files as 3-channel colour and compares them
through YCbCr, which compresses the range by 219/255 and reads about 1.32 dB higher on
"bridge" (about +0.09 dB on the Set14 mean); ``gray_as_rgb=True`` (``--gray-as-rgb``)
reproduces that, for comparing with numbers produced by BasicSR (the papers' model rows).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seemore.common.progress import progress

from seemore import cli
from seemore.common.tables import format_table
from seemore.common.tensors import image_to_tensor
from seemore.benchmark import BenchmarkImage, load_named_benchmark
from seemore.checkpoint import (
    CheckpointError,
    atomic_write,
    file_sha256,
    list_shipped,
    load_model,
    resolve_model_path,
)
from seemore.config import SUPPORTED_SCALES
from seemore.imresize import imresize
from seemore.metrics import sr_metrics
from seemore.paths import DataError

__all__ = [
    "DEFAULT_SETS",
    "EvalReport",
    "ImageScore",
    "SetScore",
    "evaluate_bicubic",
    "evaluate_model",
    "format_reports",
    "main",
    "run_model",
]

DEFAULT_SETS: tuple[str, ...] = ("Set5", "Set14")
PROG = "seemore-evaluate"


@dataclass(frozen=True)
class ImageScore:
    """Metrics of one image."""

    name: str
    psnr: float
    ssim: float


@dataclass(frozen=True)
class SetScore:
    """Per-image metrics of one set; ``psnr``/``ssim`` are the means over its images (as papers report)."""

    name: str
    images: tuple[ImageScore, ...]

    @property
    def psnr(self) -> float:
        """Mean PSNR over the images (dB)."""
        return float(np.mean([i.psnr for i in self.images]))

    @property
    def ssim(self) -> float:
        """Mean SSIM over the images."""
        return float(np.mean([i.ssim for i in self.images]))


@dataclass(frozen=True)
class EvalReport:
    """Results of one method (a model or bicubic) at one scale on one or more sets."""

    method: str
    scale: int
    sets: tuple[SetScore, ...]
    gray_as_rgb: bool = False
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def set(self, name: str) -> SetScore:
        """The scores of the set called ``name`` (KeyError if it was not evaluated)."""
        for s in self.sets:
            if s.name == name:
                return s
        raise KeyError(f"{name} not in report (sets: {', '.join(s.name for s in self.sets)})")

    def summary(self) -> str:
        """One line for logs, e.g. ``Set5 32.31/0.8965 | Set14 28.72/0.7840``."""
        return " | ".join(f"{s.name} {s.psnr:.2f}/{s.ssim:.4f}" for s in self.sets)

    def table(self, per_image: bool = False) -> str:
        """A plain-text table of this report (see :func:`format_reports`)."""
        return format_reports([self], per_image=per_image)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; a non-finite PSNR (identical images) becomes ``null``."""
        return {
            "method": self.method,
            "scale": self.scale,
            "protocol": {
                "channel": "Y (BT.601, [16, 235]) for RGB",
                "gray_images": "YCbCr of 3 equal channels" if self.gray_as_rgb else "own channel",
                "crop_border": self.scale,
                "ssim": "11x11 Gaussian sigma 1.5, K=(0.01, 0.03), valid",
            },
            "seconds": round(self.seconds, 3),
            **({"info": self.info} if self.info else {}),
            "sets": {
                s.name: {
                    "psnr": _finite(s.psnr),
                    "ssim": _finite(s.ssim),
                    "images": {i.name: {"psnr": _finite(i.psnr), "ssim": _finite(i.ssim)} for i in s.images},
                }
                for s in self.sets
            },
        }


def _finite(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def format_reports(reports: Sequence[EvalReport], per_image: bool = False) -> str:
    """A table with one row per (method, set), and per image when ``per_image``."""
    rows: list[tuple[str, str, str, str, str]] = []
    for rep in reports:
        for s in rep.sets:
            rows.append((rep.method, f"x{rep.scale}", s.name, f"{s.psnr:.4f}", f"{s.ssim:.5f}"))
            if per_image:
                for i in s.images:
                    rows.append(("", "", f"  {i.name}", f"{i.psnr:.4f}", f"{i.ssim:.5f}"))
    return format_table(("method", "scale", "set / image", "PSNR (dB)", "SSIM"), rows, numbers_from=3)


def _load_sets(
    sets: Iterable[str | os.PathLike[str]] | str, scale: int, data_root: str | os.PathLike[str] | None
) -> list[tuple[str, list[BenchmarkImage]]]:
    """Load every set once; without a data root all names map to one "bundled" set."""
    if isinstance(sets, (str, os.PathLike)):
        sets = [sets]
    loaded: list[tuple[str, list[BenchmarkImage]]] = []
    for name in sets:
        display, images = load_named_benchmark(name, scale, data_root)
        if any(d == display for d, _ in loaded):
            continue
        loaded.append((display, images))
    if not loaded:
        raise DataError("no benchmark sets given")
    return loaded


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return int(scale)


def run_model(model: torch.nn.Module, lr: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Super-resolve one uint8 LR image (H x W x 3, or H x W fed as 3 equal channels) to uint8 RGB.

    Whole image, no padding; output clamped to [0, 1], times 255, rounded (BasicSR's tensor2img).
    The caller sets eval mode and inference mode.
    """
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = image_to_tensor(lr)
    out = model(x.to(device=device, dtype=dtype))
    out = out.float().clamp_(0.0, 1.0).mul_(255.0).round_()
    return out[0].permute(1, 2, 0).to(device="cpu", dtype=torch.uint8).numpy()


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    return progress(total=total, desc=desc, unit="img", enabled=enabled, leave=False)


def _model_device(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def evaluate_model(
    model: torch.nn.Module,
    sets: Iterable[str | os.PathLike[str]] | str = DEFAULT_SETS,
    scale: int | None = None,
    data_root: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = "cpu",
    progress: bool = False,
    gray_as_rgb: bool = False,
    label: str | None = None,
) -> EvalReport:
    """Y-channel PSNR/SSIM of ``model`` on benchmark ``sets`` (names or folders).

    ``scale`` defaults to ``model.scale`` and must equal it when the model has one.
    ``device=None`` runs where the model's parameters are; otherwise the model is moved
    there for the run and moved back afterwards, and its train/eval mode is restored, so the
    training loop can call this on its live model. See the module docstring for how
    grayscale images are handled.
    """
    model_scale = getattr(model, "scale", None)
    if scale is None:
        if model_scale is None:
            raise ValueError("the model has no .scale; pass scale")
        scale = model_scale
    scale = _check_scale(scale)
    if model_scale is not None and int(model_scale) != scale:
        raise ValueError(f"model is x{model_scale} but scale {scale} was asked for")
    loaded = _load_sets(sets, scale, data_root)
    cfg = getattr(model, "config", None)
    min_side = getattr(cfg, "min_input_size", 1)
    for set_name, images in loaded:
        for img in images:
            if min(img.lr.shape[:2]) < min_side:
                raise DataError(
                    f"{set_name}/{img.name}: LR {img.lr.shape[:2]} is below the model minimum {min_side}"
                )
    label = label or getattr(cfg, "name", None) or type(model).__name__

    home = _model_device(model)
    target = home if device is None else torch.device(device)
    was_training = model.training
    total = sum(len(images) for _, images in loaded)
    start = time.perf_counter()
    scores: list[SetScore] = []
    try:
        model.to(target)
        model.eval()
        bar = _progress_bar(total, f"{label} x{scale}", progress)
        with torch.inference_mode(), bar:
            for set_name, images in loaded:
                results = []
                for img in images:
                    sr = run_model(model, img.lr, target)
                    want = (img.lr.shape[0] * scale, img.lr.shape[1] * scale, 3)
                    if sr.shape != want:
                        raise ValueError(f"{set_name}/{img.name}: model output {sr.shape} is not {want}")
                    results.append(ImageScore(img.name, *_pair_metrics(sr, img.hr, scale, gray_as_rgb)))
                    bar.update()
                scores.append(SetScore(set_name, tuple(results)))
    finally:
        model.train(was_training)
        model.to(home)
    return EvalReport(label, scale, tuple(scores), gray_as_rgb, time.perf_counter() - start)


def _pair_metrics(sr: np.ndarray, hr: np.ndarray, scale: int, gray_as_rgb: bool) -> tuple[float, float]:
    if gray_as_rgb and hr.ndim == 2:
        # BasicSR reads gray files as 3-channel colour and compares through YCbCr.
        hr = np.repeat(hr[:, :, None], 3, axis=2)
        if sr.ndim == 2:
            sr = np.repeat(sr[:, :, None], 3, axis=2)
    return sr_metrics(sr, hr, scale)


def evaluate_bicubic(
    sets: Iterable[str | os.PathLike[str]] | str = DEFAULT_SETS,
    scale: int = 4,
    data_root: str | os.PathLike[str] | None = None,
    progress: bool = False,
    gray_as_rgb: bool = False,
) -> EvalReport:
    """The papers' "Bicubic" row: MATLAB-style bicubic x``scale`` upsampling of the LR images.

    Gray images stay single-channel and are compared on their channel (unless ``gray_as_rgb``).
    """
    scale = _check_scale(scale)
    loaded = _load_sets(sets, scale, data_root)
    total = sum(len(images) for _, images in loaded)
    start = time.perf_counter()
    scores: list[SetScore] = []
    with _progress_bar(total, f"bicubic x{scale}", progress) as bar:
        for set_name, images in loaded:
            results = []
            for img in images:
                sr = imresize(img.lr, scale)
                results.append(ImageScore(img.name, *_pair_metrics(sr, img.hr, scale, gray_as_rgb)))
                bar.update()
            scores.append(SetScore(set_name, tuple(results)))
    return EvalReport("bicubic", scale, tuple(scores), gray_as_rgb, time.perf_counter() - start)


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = cli.make_parser(
        PROG,
        "Y-channel PSNR/SSIM (crop border = scale) of a SeemoRe model and/or MATLAB-style bicubic\n"
        "on SR benchmark sets, as in the papers' tables.",
    )
    cli.add_model(
        p,
        default=None,
        help_extra=" (default: the shipped seemore_t_x{scale}, unless --bicubic is given alone)",
    )
    p.add_argument(
        "--scale",
        type=int,
        choices=SUPPORTED_SCALES,
        help="upscaling factor; default: the model's scale, or 4 for --bicubic; must match the model",
    )
    p.add_argument(
        "--sets",
        nargs="+",
        default=list(DEFAULT_SETS),
        metavar="SET",
        help="set names under <data-root>/benchmark/ or folders with HR/ and LR_bicubic/X{s}/ "
        "(default: Set5 Set14)",
    )
    cli.add_data_root(p)
    p.add_argument(
        "--bicubic", action="store_true", help="evaluate MATLAB-style bicubic upsampling (with --model: both)"
    )
    p.add_argument("--per-image", action="store_true", help="also print every image's PSNR/SSIM")
    cli.add_json(p)
    p.add_argument(
        "--device", default="cpu", help="torch device for the model, e.g. cpu, cuda, mps (default: cpu)"
    )
    cli.add_threads(p)
    p.add_argument(
        "--gray-as-rgb",
        action="store_true",
        help="compare grayscale images (Set14 'bridge') through YCbCr of 3 equal channels as BasicSR's "
        "validation does (about +0.09 dB on Set14); default: on their own channel, as the papers' "
        "bicubic rows",
    )
    cli.add_progress(p)
    return p


def _parse_device(text: str) -> torch.device:
    """``--device`` as a torch device; :class:`cli.UsageError` when it is not one or not available."""
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise cli.UsageError(f"--device {text!r}: not a torch device (try cpu, cuda, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise cli.UsageError(f"--device {text}: CUDA is not available in this torch build or machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise cli.UsageError(f"--device {text}: MPS is not available on this machine")
    return dev


def _run(args: argparse.Namespace) -> int:
    # Bad arguments first, before any checkpoint or image is read.
    cli.check_json_path(args.json)
    device = _parse_device(args.device)
    # Only PyTorch runs here; cli.apply_threads would also import the ExecuTorch runtime.
    torch.set_num_threads(args.threads)

    model = None
    model_name = args.model
    if model_name is None and not args.bicubic:
        default = f"seemore_t_x{args.scale or 4}"
        if default not in list_shipped():
            raise ValueError(f"no shipped {default} checkpoint; pass --model PATH or --bicubic")
        model_name = default
    if model_name is not None:
        model = load_model(model_name)
        if args.scale is not None and args.scale != model.scale:
            raise ValueError(
                f"{model_name}: model is x{model.scale} ({model.config.name}), not --scale {args.scale}"
            )
    scale = args.scale or (model.scale if model is not None else 4)

    progress = not args.no_progress
    reports: list[EvalReport] = []
    if model is not None:
        path = resolve_model_path(model_name)
        label = model_name if str(model_name) in list_shipped() else path.stem
        rep = evaluate_model(
            model, args.sets, scale, args.data_root, device, progress, args.gray_as_rgb, label=label
        )
        info = {"checkpoint": str(path), "sha256": file_sha256(path), "config": model.config.name}
        reports.append(dataclasses.replace(rep, info=info))
    if args.bicubic:
        reports.append(evaluate_bicubic(args.sets, scale, args.data_root, progress, args.gray_as_rgb))

    print(format_reports(reports, per_image=args.per_image))
    if args.json:
        doc = {"tool": "seemore.evaluate", "reports": [r.to_dict() for r in reports]}
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(text))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 ok, 1 failed, 2 bad arguments, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    # RuntimeError too: torch reports a failed forward pass (e.g. out of memory) with it, and the
    # message alone (without its type) is what this tool has always printed.
    return cli.run_main(PROG, lambda: _run(args), expected=(CheckpointError, DataError, RuntimeError))


if __name__ == "__main__":
    raise SystemExit(main())
