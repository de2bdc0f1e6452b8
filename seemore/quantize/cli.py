"""``python quantization/qat.py`` (``seemore-qat``): PTQ baseline and QAT INT8, evaluated, program saved.

Prints Set5/Set14 PSNR/SSIM of FP32, PTQ INT8 and QAT INT8, and writes the converted INT8
program (``torch.export.save`` at the fixed export size, default 180x320 LR, batch dynamic)
with its contract into ``--out``, where the exporters find it by the checkpoint's SHA-256.
Calibration and training use training images only (``<data root>/train``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from seemore.cli import (
    UsageError,
    add_data_root,
    add_json,
    add_model,
    add_progress,
    add_size,
    add_threads,
    check_json_path,
    check_output_folder,
    make_parser,
    run_main,
    write_json,
)
from seemore.quantize.programs import DEFAULT_PROGRAM_DIR
from seemore.quantize.quantizers import QUANT_BACKENDS
from seemore.quantize.recipe import QATSettings
from seemore.quantize.run import EVAL_SETS

PROG = "qat.py"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    d = QATSettings()
    p = make_parser(PROG, "PT2E INT8 quantization of SeemoRe: PTQ baseline plus quantization-aware training, "
                    "evaluated on Set5/Set14; saves the quantized program (with its contract) for the exporters.")
    add_model(p)
    p.add_argument("--backend", choices=QUANT_BACKENDS, default=d.backend,
                   help=f"quantizer of the backend the program will be lowered with (default: {d.backend})")
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
    add_data_root(p)
    p.add_argument("--sets", nargs="+", default=list(EVAL_SETS), metavar="SET",
                   help=f"benchmark sets for the PSNR/SSIM table (default: {' '.join(EVAL_SETS)})")
    add_size(p, what=" of the saved program (the exporters' fixed input)")
    p.add_argument("--out", type=Path, default=DEFAULT_PROGRAM_DIR, help=f"output folder (default: {DEFAULT_PROGRAM_DIR})")
    p.add_argument("--ptq-only", action="store_true",
                   help="calibration only: evaluate FP32 and PTQ and save the PTQ program (no training)")
    add_threads(p)
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of every random choice (default: {d.seed})")
    add_json(p)
    add_progress(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        from seemore.toolchain_logs import quiet_toolchain_logs

        quiet_toolchain_logs()
        check_json_path(args.json)
        check_output_folder(args.out)
        settings = QATSettings(
            backend=args.backend, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
            patch_size=args.patch_size, calibration_batches=args.calibration_batches, ptq_images=args.ptq_images,
            freeze_observers_at=args.freeze_observers, seed=args.seed, ptq_only=args.ptq_only,
        )
        import torch

        from seemore.checkpoint import CheckpointError, load_model, resolve_model_path
        from seemore.contract import ExportSpec, SpecError
        from seemore.paths import resolve_data_root
        from seemore.quantize.quantizers import QuantizeError, backend_quantizer
        from seemore.quantize.run import format_summary, run_quantization

        try:
            settings.validate()
            checkpoint = resolve_model_path(args.model)
            model = load_model(checkpoint)
            height, width = args.size
            spec = ExportSpec(backend=args.backend, precision="int8", height=height, width=width, scale=model.scale)
            settings.validate(model.config)
            spec.check_model(model)
            data_root = resolve_data_root(args.data_root)
        except (QuantizeError, SpecError, CheckpointError) as exc:
            raise UsageError(str(exc)) from None
        backend_quantizer(args.backend, is_qat=not args.ptq_only)  # toolchain present? one line if not
        torch.set_num_threads(args.threads)
        print(f"{model.config.name} from {checkpoint}: {'PTQ' if args.ptq_only else 'QAT'} INT8 for {args.backend}, "
              f"{torch.get_num_threads()} threads -> {args.out}", file=sys.stderr)
        result = run_quantization(model, settings, args.out, checkpoint=checkpoint, data_root=data_root, spec=spec,
                                  eval_sets=args.sets, progress=not args.no_progress)
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
            print(f"target: QAT Set5 drop {target['qat_set5_drop_db']:.3f} dB (<= {target['max_set5_drop_db']} dB) "
                  f"{verdict}")
        print(f"wrote {result.program} (+ its contract {Path(result.contract or '').name})")
        return 0

    from seemore.checkpoint import CheckpointError
    from seemore.contract import ContractError, SpecError
    from seemore.paths import DataError
    from seemore.quantize.quantizers import QuantizeError

    return run_main(PROG, body, expected=(QuantizeError, SpecError, CheckpointError, DataError, ContractError))
