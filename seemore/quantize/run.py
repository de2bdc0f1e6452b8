"""One quantization run, as ``python quantization/qat.py`` does it: evaluate, PTQ, QAT, save.

FP32, PTQ INT8 and QAT INT8 are evaluated with the standard protocol
(:func:`seemore.evaluate.evaluate_model`, Y channel, crop = scale) on whole LR images, the
converted (Q/DQ, "fake-quantized") programs running in PyTorch; the final program is saved
with its contract (:mod:`seemore.quantize.programs`) for the exporters.

Reproducibility: every random choice is seeded (``settings.seed``: image choice, patch order,
flips; torch's generator too), so two runs with the same thread count on one machine give
the same numbers. Another thread count or CPU changes the float summation order of the
convolutions, and QAT follows a slightly different path from there (the README gives the
measured spread).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seemore.common.files import file_sha256
from seemore.common.tables import format_table
from seemore.contract.spec import ExportSpec
from seemore.deploy import DeploySeemoRe
from seemore.model import SeemoRe
from seemore.quantize.data import load_training_data, ptq_calibration_images
from seemore.quantize.programs import DEFAULT_PROGRAM_DIR, save_program
from seemore.quantize.quantizers import backend_quantizer, quantizer_description
from seemore.quantize.recipe import (
    QATSettings,
    _patch_batches,
    calibrate_qat_observers,
    capture,
    evaluable,
    prepare_qat,
    quantize_ptq,
    train_qat,
)
from seemore.train.data import PatchSampler

ProgressFn = Callable[[str], None]


EVAL_SETS: tuple[str, ...] = ("Set5", "Set14")


# Set5 x4 PSNR that QAT INT8 may lose against FP32 (the project's target).
MAX_QAT_DROP_DB = 0.1


@dataclass
class QuantizationResult:
    """Everything one run measured and wrote."""

    model: str
    backend: str
    checkpoint: str | None
    checkpoint_sha256: str | None
    settings: QATSettings
    data: dict[str, Any]
    metrics: dict[str, dict[str, dict[str, float]]]
    timing: dict[str, float]
    training: dict[str, Any] = field(default_factory=dict)
    program: str | None = None
    contract: str | None = None
    evaluation_note: str = ""

    def drop_db(self, method: str, set_name: str = "Set5") -> float | None:
        """PSNR lost by ``method`` (``ptq_int8``/``qat_int8``) against FP32 on ``set_name``."""
        if method not in self.metrics or set_name not in self.metrics[method]:
            return None
        return self.metrics["fp32"][set_name]["psnr"] - self.metrics[method][set_name]["psnr"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``--json`` writes)."""
        qat_drop = self.drop_db("qat_int8")
        return {
            "model": self.model,
            "backend": self.backend,
            "quantizer": quantizer_description(self.backend),
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "settings": asdict(self.settings),
            "data": self.data,
            "evaluation": {"protocol": self.evaluation_note, "scale": self.metrics.get("scale")},
            "metrics": {k: v for k, v in self.metrics.items() if k != "scale"},
            "psnr_drop_db": {
                m: {s: self.drop_db(m, s) for s in self.metrics["fp32"]}
                for m in ("ptq_int8", "qat_int8")
                if m in self.metrics
            },
            "target": {
                "max_set5_drop_db": MAX_QAT_DROP_DB,
                "qat_set5_drop_db": qat_drop,
                "met": None if qat_drop is None else qat_drop <= MAX_QAT_DROP_DB,
            },
            "training": self.training,
            "timing_s": self.timing,
            "program": self.program,
            "contract": self.contract,
        }


EVALUATION_NOTE = (
    "Y-channel PSNR/SSIM (crop = scale) via seemore.evaluate.evaluate_model on each whole LR image; "
    "the quantized programs are the convert_pt2e (Q/DQ) graphs captured with dynamic height/width, "
    "so they run at every image's own size with no padding or tiling, like FP32"
)


def evaluate_program(
    model: nn.Module, scale: int, label: str, data_root: str | Path | None, sets: Sequence[str] = EVAL_SETS,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Set -> {psnr, ssim} of a float model or a converted program (standard protocol)."""
    from seemore.evaluate import evaluate_model

    if isinstance(model, torch.fx.GraphModule):
        model = evaluable(model)
    report = evaluate_model(model, tuple(sets), scale, data_root, "cpu", progress, label=label)
    return {s.name: {"psnr": round(s.psnr, 4), "ssim": round(s.ssim, 5)} for s in report.sets}


def run_quantization(
    model: SeemoRe,
    settings: QATSettings,
    out_dir: str | Path = DEFAULT_PROGRAM_DIR,
    checkpoint: str | Path | None = None,
    data_root: str | Path | None = None,
    spec: ExportSpec | None = None,
    eval_sets: Sequence[str] = EVAL_SETS,
    progress: bool = True,
    say: ProgressFn | None = None,
) -> QuantizationResult:
    """FP32 / PTQ / QAT evaluation and the saved INT8 program; see the module docstring.

    ``spec`` sets the saved program's fixed input shape (default 1x3x180x320 at the
    model's scale); its backend is ``settings.backend``.
    """
    say = say or (lambda msg: print(msg, file=sys.stderr))
    cfg = model.config
    settings.validate(cfg)
    spec = (spec or ExportSpec(scale=cfg.scale)).with_(backend=settings.backend, precision="int8", batch=1)
    spec.check_model(model)
    backend_quantizer(settings.backend, is_qat=not settings.ptq_only)  # fail early, one line
    timing: dict[str, float] = {}
    start = time.perf_counter()
    torch.manual_seed(settings.seed)

    data = load_training_data(cfg.scale, data_root, progress=progress)
    deploy = DeploySeemoRe.from_reference(model, settings.backend).eval()  # the program's backend's form
    metrics: dict[str, Any] = {"scale": cfg.scale}

    t = time.perf_counter()
    say("evaluating FP32 (reference model)")
    metrics["fp32"] = evaluate_program(model, cfg.scale, "fp32", data_root, eval_sets, progress)
    timing["eval_fp32"] = time.perf_counter() - t

    t = time.perf_counter()
    say("capturing the deploy form (dynamic batch/height/width)")
    captured = capture(deploy, spec)
    timing["capture"] = time.perf_counter() - t
    t = time.perf_counter()
    min_side = 2 * cfg.min_input_size
    ptq_images = ptq_calibration_images(data, settings.ptq_images, min_side, seed=settings.seed)
    say(f"PTQ: calibrating on {len(ptq_images)} whole LR training images")
    ptq = quantize_ptq(captured, settings.backend, ptq_images, progress)
    timing["ptq"] = time.perf_counter() - t
    t = time.perf_counter()
    metrics["ptq_int8"] = evaluate_program(ptq, cfg.scale, "ptq int8", data_root, eval_sets, progress)
    timing["eval_ptq"] = time.perf_counter() - t

    data_record = {
        **data.describe(),
        "ptq_calibration": {"images": len(ptq_images), "kind": "whole LR training images, centre crop <= 128 px"},
    }
    training: dict[str, Any] = {}
    final, method = ptq, "ptq"
    if not settings.ptq_only:
        t = time.perf_counter()
        sampler = PatchSampler(data.images, cfg.scale, settings.patch_size, seed=settings.seed)
        say(f"QAT: calibrating observers on {settings.calibration_batches} batches of training patches")
        prepared = prepare_qat(captured, settings.backend)
        # Calibration batches use sampler indices far past the training steps: unseen patches.
        seen = calibrate_qat_observers(
            prepared,
            _patch_batches(sampler, settings.calibration_batches, settings.batch_size, offset=10_000_000),
            total=settings.calibration_batches,
            progress=progress,
        )
        timing["qat_prepare_calibrate"] = time.perf_counter() - t
        t = time.perf_counter()
        training = train_qat(prepared, sampler, settings, progress)
        timing["qat_train"] = time.perf_counter() - t
        timing["qat_s_per_step"] = timing["qat_train"] / max(settings.steps, 1)
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        final, method = convert_pt2e(prepared), "qat"
        t = time.perf_counter()
        metrics["qat_int8"] = evaluate_program(final, cfg.scale, "qat int8", data_root, eval_sets, progress)
        timing["eval_qat"] = time.perf_counter() - t
        data_record["qat_calibration"] = {
            "batches": seen,
            "batch_size": settings.batch_size,
            "kind": f"LR training patches {settings.patch_size}x{settings.patch_size}",
        }
        data_record["qat_training"] = {"kind": f"LR/HR training patches, LR {settings.patch_size}px, flips/rotations"}

    t = time.perf_counter()
    sha = file_sha256(checkpoint) if checkpoint is not None else None
    result = QuantizationResult(
        model=cfg.name,
        backend=settings.backend,
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        checkpoint_sha256=sha,
        settings=settings,
        data=data_record,
        metrics=metrics,
        timing=timing,
        training=training,
        evaluation_note=EVALUATION_NOTE,
    )
    say(f"saving the {method.upper()} INT8 program at {spec.height}x{spec.width}")
    record = {
        "settings": asdict(settings),
        "data": data_record,
        "metrics": {k: v for k, v in metrics.items() if k != "scale"},
        "evaluation": EVALUATION_NOTE,
        "training": training,
    }
    path, side = save_program(final, spec, out_dir, cfg, checkpoint, method, record)
    timing["save"] = time.perf_counter() - t
    timing["total"] = time.perf_counter() - start
    result.program, result.contract = str(path), str(side)
    return result


def format_summary(result: QuantizationResult) -> str:
    """One-screen table: PSNR/SSIM per set for FP32, PTQ and QAT, with the drop against FP32."""
    sets = list(result.metrics["fp32"])
    rows = []
    for key, label in (("fp32", "FP32"), ("ptq_int8", "PTQ INT8"), ("qat_int8", "QAT INT8")):
        if key not in result.metrics:
            continue
        cells = [label]
        for s in sets:
            m = result.metrics[key][s]
            drop = result.drop_db(key, s) if key != "fp32" else None
            cells.append(f"{m['psnr']:.2f}/{m['ssim']:.4f}" + (f" ({-drop:+.2f} dB)" if drop is not None else ""))
        rows.append(cells)
    return format_table(["model", *(f"{s} PSNR/SSIM (drop)" for s in sets)], rows)
