"""The one export CLI behind ``mobile/export_<runtime>.py`` and the ``seemore-export-*`` console scripts.

Every runtime gets the same flags (:mod:`seemore.cli`); only the list of targets differs
(:data:`seemore.export.targets.DEFAULT_TARGETS`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from seemore.cli import (
    UsageError,
    add_data_root,
    add_json,
    add_model,
    add_progress,
    add_size,
    add_threads,
    apply_threads,
    check_json_path,
    check_output_folder,
    make_parser,
    non_negative_int,
    positive_int,
    run_main,
    size_type,
    write_json,
)
from seemore.common.tables import format_table
from seemore.export.targets import DEFAULT_LAYOUTS, DEFAULT_TARGETS, targets_for

if TYPE_CHECKING:
    from seemore.export.driver import ExportResult

RUNTIME_TITLES = {"executorch": "ExecuTorch .pte", "onnxruntime": "ONNX",
                  "coreml": "Core ML .mlpackage (and the Core ML-delegated .pte)", "litert": "LiteRT .tflite"}


def default_out(runtime: str) -> Path:
    """Default output folder of a runtime's artifacts."""
    return Path("artifacts") / runtime


def build_parser(runtime: str, prog: str) -> argparse.ArgumentParser:
    """The parser of one runtime's export CLI."""
    names = [t.name for t in targets_for(runtime)]
    defaults = list(DEFAULT_TARGETS[runtime])
    p = make_parser(
        prog,
        f"Export SeemoRe to {RUNTIME_TITLES.get(runtime, runtime)} artifacts, each checked in its runtime "
        "against PyTorch and written with its contract (<artifact>.json).",
        epilog="INT8 targets are lowered from the program `python quantization/qat.py` saved for this very "
        "checkpoint (found by its SHA-256 under artifacts/quantization/ or --out), from --int8-program, or, "
        "when there is none (or with --ptq), from post-training quantization on training images.",
    )
    add_model(p)
    p.add_argument("--targets", nargs="+", choices=names, default=defaults, metavar="TARGET",
                   help=f"what to export, any of {', '.join(names)} (default: {' '.join(defaults)})")
    p.add_argument("--out", type=Path, default=default_out(runtime),
                   help=f"output folder (default: {default_out(runtime)})")
    add_size(p, what="; the output is scale times larger, larger images are tiled per the contract")
    p.add_argument("--batch", type=positive_int, default=1, help="fixed batch size of the artifacts (default: 1)")
    layout = DEFAULT_LAYOUTS[runtime]
    p.add_argument("--layout", choices=("NCHW", "NHWC"), default=layout,
                   help=f"tensor layout of the artifacts' input and output (default: {layout})")
    if runtime == "coreml":
        p.add_argument("--image-io", action="store_true",
                       help="image-typed input and output (RGB; the model scales to [0, 255] and clamps), so an app "
                       "can pass a camera or photo buffer (default: float32 tensors)")
        p.add_argument("--deployment-target", choices=("iOS17", "iOS18"), default="iOS17",
                       help="minimum iOS of the packages (default: iOS17)")
        p.add_argument("--sizes", nargs="+", type=size_type, default=(), metavar="HxW",
                       help="further fixed LR input sizes the packages accept (enumerated shapes; --size stays the "
                       "default and the one checked); flexible ranges are not offered: they fall off the Neural Engine")
    add_data_root(p)
    p.add_argument("--int8-program", type=Path, default=None, metavar="PT2",
                   help="INT8 from this saved program (refused when made from another checkpoint, size or quantizer)")
    p.add_argument("--ptq", action="store_true", help="INT8 by post-training quantization here, ignoring saved programs")
    p.add_argument("--calibration-images", type=positive_int, default=None, metavar="N",
                   help="PTQ: calibrate on N whole LR training images (default: 32)")
    p.add_argument("--no-check", action="store_true", help="do not run the artifacts in their runtime here")
    p.add_argument("--bench", type=non_negative_int, default=0, metavar="RUNS",
                   help="also time each artifact that runs here and eager PyTorch, median of RUNS (default: 0, off)")
    add_threads(p)
    add_json(p)
    add_progress(p)
    return p


def format_results(results: Sequence[ExportResult]) -> str:
    """One-screen summary of the written artifacts."""
    rows = []
    for r in results:
        s = r.contract.structure
        check = r.check
        if not check.get("ran"):
            sim = check.get("fp16_simulation")
            parity = "not run" + (f" (fp16 sim {sim['psnr_db']:.1f} dB {sim['status']})" if sim else "")
        else:
            parity = f"{check['psnr_db']:.1f} dB {check['status']}"
            if "reference_self_psnr_db" in check:
                parity += f" (ref. self {check['reference_self_psnr_db']:.1f})"
        timing = "-"
        if "artifact_median_ms" in check:
            timing = f"{check['artifact_median_ms']:.0f}/{check['eager_fp32_median_ms']:.0f}"
        share = s.get("delegated_mac_share")
        rows.append([r.name, f"{r.contract.artifact.bytes / 1e6:.2f} MB", s.get("partitions", "-"),
                     s.get("ops_outside", "-"), "-" if share is None else f"{100 * share:.1f}%", parity, timing])
    return format_table(["artifact", "size", "partitions", "ops out", "MACs in", "check", "ms artifact/eager"], rows)


def export_main(runtime: str, prog: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of one runtime's export CLI; returns the exit status."""
    args = build_parser(runtime, prog).parse_args(argv)

    def body() -> int:
        from seemore.toolchain_logs import quiet_toolchain_logs

        quiet_toolchain_logs()
        check_json_path(args.json)
        check_output_folder(args.out)
        if args.int8_program is not None and args.ptq:
            raise UsageError("--int8-program and --ptq exclude each other")
        from seemore.common.progress import progress

        from seemore.checkpoint import CheckpointError, load_model, resolve_model_path
        from seemore.contract import SpecError
        from seemore.export.driver import ExportOptions, export_targets, target_spec
        from seemore.parity.bounds import BoundError, spec_bound
        from seemore.export.targets import get_target
        from seemore.paths import resolve_data_root

        targets = [get_target(n) for n in dict.fromkeys(args.targets)]
        if args.int8_program is not None and not any(t.precision == "int8" for t in targets):
            raise UsageError("--int8-program needs an int8 target in --targets")
        if args.int8_program is not None and not Path(args.int8_program).is_file():
            raise UsageError(f"--int8-program {args.int8_program}: no such program file")
        try:
            checkpoint = resolve_model_path(args.model)
            model = load_model(checkpoint)
        except CheckpointError as exc:
            raise UsageError(str(exc)) from None
        height, width = args.size
        coreml = {}
        if runtime == "coreml":
            coreml = {"io": "image" if args.image_io else "tensor", "deployment_target": args.deployment_target,
                      "extra_sizes": tuple(args.sizes)}
        options = ExportOptions(height=height, width=width, batch=args.batch, layout=args.layout,
                                data_root=resolve_data_root(args.data_root), int8_program=args.int8_program,
                                ptq=args.ptq, calibration_images=args.calibration_images,
                                verify=not args.no_check, bench_runs=args.bench, **coreml)
        try:  # every spec (and its parity bound) checked before the first lowering
            for target in targets:
                spec = target_spec(target, options, model.scale)
                spec.check_model(model)
                for h, w in spec.sizes:
                    spec.with_(height=h, width=w, sizes=()).check_model(model)
                spec_bound(spec)
        except (SpecError, BoundError) as exc:
            raise UsageError(str(exc)) from None
        apply_threads(args.threads)
        print(f"exporting {model.config.name} from {checkpoint} at {height}x{width} -> {args.out}", file=sys.stderr)
        results = []
        bar = progress(targets, unit="artifact", enabled=not args.no_progress)
        try:
            for target in bar:
                bar.set_description(target.name)
                results += export_targets(
                    model, [target], args.out, checkpoint, options,
                    progress=lambda msg: bar.set_postfix_str(msg.split(": ", 1)[-1], refresh=True),
                )
        finally:
            bar.close()
        print(format_results(results))
        if runtime == "coreml":
            from seemore.export.coreml import format_package_report

            for r in results:
                if "neural_engine" in r.contract.structure:
                    print("\n" + format_package_report(r.name, r.contract.structure))
        if args.json is not None:
            write_json(args.json, {"out": str(args.out), "artifacts": [
                {"artifact": r.name, "contract": str(r.contract_file), "export_check": r.check} for r in results]})
        failed = [r.name for r in results if r.failed]
        if failed:
            print(f"{prog}: error: export check below its bound for {', '.join(failed)} (see the contract JSON)",
                  file=sys.stderr)
            return 1
        return 0

    from seemore.checkpoint import CheckpointError
    from seemore.contract import ContractError, SpecError
    from seemore.export.base import ExportError
    from seemore.paths import DataError
    from seemore.quantize.quantizers import QuantizeError

    return run_main(prog, body, expected=(SpecError, CheckpointError, DataError, ExportError, QuantizeError,
                                          ContractError))


def executorch_main(argv: Sequence[str] | None = None) -> int:
    """``seemore-export-executorch`` / ``python mobile/export_executorch.py``."""
    return export_main("executorch", "export_executorch.py", argv)


def coreml_main(argv: Sequence[str] | None = None) -> int:
    """``seemore-export-coreml`` / ``python mobile/export_coreml.py``."""
    return export_main("coreml", "export_coreml.py", argv)


def tflite_main(argv: Sequence[str] | None = None) -> int:
    """``seemore-export-tflite`` / ``python mobile/export_tflite.py``."""
    return export_main("litert", "export_tflite.py", argv)


def onnx_main(argv: Sequence[str] | None = None) -> int:
    """``seemore-export-onnx`` (the host benchmark's ONNX Runtime baseline)."""
    return export_main("onnxruntime", "export_onnx", argv)
