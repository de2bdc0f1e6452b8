"""Quantize SeemoRe to INT8 with PT2E: PTQ baseline and quantization-aware training (QAT).

Run from the repository root::

    python quantization/qat.py                                  # shipped seemore_t_x4, XNNPACK, QAT
    python quantization/qat.py --backend coreml --steps 200
    python quantization/qat.py --ptq-only --json runs/ptq.json
    python quantization/qat.py --checkpoint my.safetensors --out /tmp/q

Prints Set5/Set14 x4 PSNR/SSIM of FP32, PTQ INT8 and QAT INT8, and writes the converted
INT8 program (``torch.export.save``, re-exported at the fixed export size, default
1x3x180x320) with a sidecar JSON into ``--out``, for the exporters, e.g.
``python mobile/export_executorch.py --int8-program artifacts/quantization/<name>.pt2``.
Calibration and training use training images only (``<data root>/train``). A thin CLI
over :mod:`seemore.quantize`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seemore.cli import OneLineParser, fail, write_json
from seemore.toolchain_logs import quiet_toolchain_logs
from seemore.checkpoint import CheckpointError
from seemore.export.spec import DEFAULT_LR_HEIGHT, DEFAULT_LR_WIDTH, SpecError, parse_size
from seemore.paths import DataError
from seemore.quantize import DEFAULT_OUT, EVAL_SETS, QUANT_BACKENDS, QATSettings, QuantizeError

DEFAULT_CHECKPOINT = "seemore_t_x4"
PROG = "qat.py"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    d = QATSettings()
    p = OneLineParser(
        prog=PROG,
        description="PT2E INT8 quantization of SeemoRe: PTQ baseline plus quantization-aware training, "
        "evaluated on Set5/Set14; saves the quantized program for the exporters.",
    )
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                   help=f"shipped checkpoint name or a .safetensors/.pth file (default: {DEFAULT_CHECKPOINT})")
    p.add_argument("--backend", default=d.backend,
                   help=f"quantizer of the backend the program will be lowered with: {', '.join(QUANT_BACKENDS)} "
                   f"(default: {d.backend})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"QAT optimisation steps (default: {d.steps})")
    p.add_argument("--lr", type=float, default=d.lr,
                   help=f"peak Adam learning rate, cosine-decayed to 0 (default: {d.lr:g})")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"patches per QAT step and calibration batch, >= 2 (default: {d.batch_size})")
    p.add_argument("--patch-size", type=int, default=d.patch_size,
                   help=f"LR patch side for calibration and QAT (default: {d.patch_size})")
    p.add_argument("--calibration-batches", type=int, default=d.calibration_batches,
                   help=f"QAT observer calibration batches before training (default: {d.calibration_batches})")
    p.add_argument("--ptq-images", type=int, default=d.ptq_images,
                   help=f"whole LR training images for PTQ calibration (default: {d.ptq_images})")
    p.add_argument("--freeze-observers", type=float, default=d.freeze_observers_at, metavar="FRACTION",
                   help="freeze observer ranges after this fraction of the QAT steps "
                   f"(default: {d.freeze_observers_at}; 1 = never)")
    p.add_argument("--data-root", default=None,
                   help="data folder with train/ (calibration, QAT) and benchmark/ (evaluation) "
                   "(default: $SEEMORE_DATA or ../shared/data; scikit-image's sample photos when none exists)")
    p.add_argument("--eval-sets", nargs="+", default=list(EVAL_SETS), metavar="SET",
                   help=f"benchmark sets for the PSNR/SSIM table (default: {' '.join(EVAL_SETS)})")
    p.add_argument("--size", default=f"{DEFAULT_LR_HEIGHT}x{DEFAULT_LR_WIDTH}",
                   help=f"fixed LR input size HxW of the saved program (default: {DEFAULT_LR_HEIGHT}x{DEFAULT_LR_WIDTH})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--ptq-only", action="store_true",
                   help="calibration only: evaluate FP32 and PTQ and save the PTQ program (no training)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for PyTorch (default: 2)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the patch sampler and image choice (default: {d.seed})")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    quiet_toolchain_logs()
    try:
        if args.backend not in QUANT_BACKENDS:
            raise QuantizeError(f"unknown backend {args.backend!r}; choose from {', '.join(QUANT_BACKENDS)}")
        if args.threads < 1:
            raise QuantizeError(f"--threads must be >= 1, got {args.threads}")
        height, width = parse_size(args.size)
        settings = QATSettings(
            backend=args.backend,
            steps=args.steps,
            lr=args.lr,
            batch_size=args.batch_size,
            patch_size=args.patch_size,
            calibration_batches=args.calibration_batches,
            ptq_images=args.ptq_images,
            freeze_observers_at=args.freeze_observers,
            seed=args.seed,
            ptq_only=args.ptq_only,
        )
        settings.validate()
        # Heavy imports only once the arguments are known to be usable.
        import torch

        from seemore.checkpoint import load_model, resolve_model_path
        from seemore.export.spec import ExportSpec
        from seemore.quantize import backend_quantizer, format_summary, run_quantization

        checkpoint = resolve_model_path(args.checkpoint)
        model = load_model(checkpoint)
        spec = ExportSpec(backend=args.backend, precision="int8", height=height, width=width, scale=model.scale)
        settings.validate(model.config)
        spec.check_model(model)
        backend_quantizer(args.backend, is_qat=not args.ptq_only)
    except (QuantizeError, SpecError, CheckpointError, DataError) as exc:
        return fail(PROG, str(exc))

    torch.set_num_threads(args.threads)
    print(
        f"{model.config.name} from {checkpoint}: {'PTQ' if args.ptq_only else 'QAT'} INT8 for {args.backend}, "
        f"{torch.get_num_threads()} threads -> {args.out}",
        file=sys.stderr,
    )
    try:
        result = run_quantization(
            model, settings, args.out, checkpoint=checkpoint, data_root=args.data_root, spec=spec,
            eval_sets=args.eval_sets, progress=not args.no_progress,
        )
    except (QuantizeError, SpecError, CheckpointError, DataError) as exc:
        return fail(PROG, str(exc))
    except Exception as exc:  # a toolchain failure: one line, not a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return fail(PROG, f"quantization failed ({type(exc).__name__}): {first}", code=1)

    summary = result.to_dict()
    if args.json is not None:
        write_json(args.json, summary)
    print(format_summary(result))
    print(f"evaluation: {result.evaluation_note}")
    t = result.timing
    train = f", QAT {t['qat_train']:.0f} s ({t['qat_s_per_step']:.2f} s/step)" if "qat_train" in t else ""
    print(f"wall time {t['total']:.0f} s{train}")
    target = summary["target"]
    if target["met"] is not None:
        verdict = "met" if target["met"] else "NOT met"
        print(f"target: QAT Set5 drop {target['qat_set5_drop_db']:.3f} dB (<= {target['max_set5_drop_db']} dB) {verdict}")
    print(f"wrote {result.program} (+ .json sidecar)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
