"""Export SeemoRe to ExecuTorch ``.pte`` files: XNNPACK FP32, XNNPACK INT8 and Vulkan FP16.

Run from the repository root::

    python mobile/export_executorch.py                          # shipped seemore_t_x4, all three
    python mobile/export_executorch.py --checkpoint my.safetensors --backends xnnpack-fp32
    python mobile/export_executorch.py --size 360x640 --out /tmp/pte

Each ``.pte`` is written with a sidecar JSON (export spec, checkpoint SHA-256, tool
versions, delegation summary, export check) into ``--out``. The XNNPACK files are run
once in ``executorch.runtime`` on a real image and compared with their torch model:
FP32 against eager PyTorch (>= 60 dB), INT8 against the converted quantized model
(>= 45 dB, or "at floor": see :mod:`seemore.export.bounds`); a FAIL gives exit code 1. Vulkan files
cannot run on this host (no Vulkan backend in the pip runtime): a torch fp16 run on a
small real crop stands in to catch fp16 overflow. INT8 is lowered from the QAT program that
``python quantization/qat.py`` saved (``artifacts/quantization/``), from ``--int8-program``,
or, when neither exists (or with ``--ptq``), from post-training quantization on LR
training images; the converted program is saved next to the ``.pte`` as its parity
reference. A thin CLI over
:mod:`seemore.export.executorch_export`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from seemore.checkpoint import CheckpointError
from seemore.export.spec import DEFAULT_LR_HEIGHT, DEFAULT_LR_WIDTH, ExportSpec, SpecError, parse_size
from seemore.paths import DataError

DEFAULT_CHECKPOINT = "seemore_t_x4"
DEFAULT_OUT = Path("artifacts") / "executorch"
# CLI name -> (backend, precision)
TARGETS: dict[str, tuple[str, str]] = {
    "xnnpack-fp32": ("xnnpack", "fp32"),
    "xnnpack-int8": ("xnnpack", "int8"),
    "vulkan-fp16": ("vulkan", "fp16"),
}


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    parser = argparse.ArgumentParser(
        prog="export_executorch.py",
        description="Export SeemoRe to ExecuTorch .pte files (XNNPACK FP32/INT8, Vulkan FP16) with sidecar JSON.",
    )
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help=f"shipped checkpoint name or a .safetensors/.pth file (default: {DEFAULT_CHECKPOINT})",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=sorted(TARGETS),
        default=list(TARGETS),
        metavar="TARGET",
        help=f"what to export, any of {', '.join(TARGETS)} (default: all three)",
    )
    parser.add_argument(
        "--size",
        default=f"{DEFAULT_LR_HEIGHT}x{DEFAULT_LR_WIDTH}",
        help="fixed LR input size HxW; the output is scale times larger "
        f"(default: {DEFAULT_LR_HEIGHT}x{DEFAULT_LR_WIDTH}, i.e. 720x1280 at x4; larger images are tiled)",
    )
    parser.add_argument("--batch", type=int, default=1, help="fixed batch size of the artifacts (default: 1)")
    parser.add_argument(
        "--data-root",
        default=None,
        help="data folder with benchmark/Set5, Set14 (default: $SEEMORE_DATA or ../shared/data; "
        "scikit-image's sample photos when none exists)",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=None,
        metavar="N",
        help="INT8 PTQ: calibrate on N whole LR training images (default: 32)",
    )
    parser.add_argument(
        "--int8-program",
        type=Path,
        default=None,
        help="INT8 from this quantized program: a convert_pt2e model saved with torch.export.save "
        "(default: quantization/qat.py's QAT program for this model and size when it exists, else PTQ here)",
    )
    parser.add_argument(
        "--ptq",
        action="store_true",
        help="INT8 by post-training quantization here even when a QAT program exists",
    )
    parser.add_argument(
        "--no-check", action="store_true", help="skip running the .pte files in executorch.runtime"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for PyTorch and the ExecuTorch runtime (default: PyTorch's default, at most 4; "
        "use 1 on a machine whose cores are busy)",
    )
    parser.add_argument(
        "--bench",
        type=int,
        default=0,
        metavar="RUNS",
        help="also time each XNNPACK .pte and eager PyTorch, median of RUNS runs (default: 0, off)",
    )
    return parser


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _load_int8_program(path: Path, spec: ExportSpec) -> Any:
    """A converted (quantized) model saved with ``torch.export.save``, checked against ``spec``."""
    import torch
    import torchao  # noqa: F401  (registers the quantized_decomposed ops the program refers to)

    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # torch.export.load raises several unrelated types
        raise CheckpointError(f"{path}: not a saved torch.export program ({type(exc).__name__})") from None
    inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
    shape = tuple(inputs[0].meta["val"].shape) if inputs and "val" in inputs[0].meta else None
    if shape is not None and all(isinstance(d, int) for d in shape) and shape != spec.input_shape:
        raise CheckpointError(f"{path}: program takes input {shape}, but the export is for {spec.input_shape}")
    return program.module()


def _format_table(results: list[Any]) -> str:
    """One-screen summary of the written artifacts."""
    rows = [("artifact", "size", "subgraphs", "ops out", "MACs in", "check", "ms .pte/eager")]
    for r in results:
        d = r.delegation
        check = r.check
        if not check.get("ran"):
            sim = check.get("fp16_simulation") or {}
            parity = "not run"
            if sim.get("finite"):
                parity = f"not run (fp16 sim {sim['psnr_db']:.1f} dB)"
            elif sim:
                parity = "not run (fp16 sim NOT FINITE)"
        else:
            status = check.get("status", "pass" if check["passed"] else "FAIL")
            parity = f"{check['psnr_db']:.1f} dB {'ok' if status == 'pass' else status}"
            if "reference_self_psnr_db" in check:
                parity += f" (ref. self {check['reference_self_psnr_db']:.1f})"
        timing = "-"
        if "pte_median_ms" in check:
            timing = f"{check['pte_median_ms']:.0f}/{check['eager_fp32_median_ms']:.0f}"
        rows.append(
            (
                r.name,
                f"{r.size_bytes / 1e6:.2f} MB",
                str(d["delegated_subgraphs"]),
                str(d["not_delegated_ops"]),
                f"{100 * d['delegated_mac_share']:.1f}%",
                parity,
                timing,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    from seemore.toolchain_logs import quiet_toolchain_logs

    quiet_toolchain_logs()
    try:
        height, width = parse_size(args.size)
        if args.batch < 1:
            raise SpecError(f"--batch must be >= 1, got {args.batch}")
        if args.calibration_images is not None and args.calibration_images < 1:
            raise SpecError(f"--calibration-images must be >= 1, got {args.calibration_images}")
        if args.threads is not None and args.threads < 1:
            raise SpecError(f"--threads must be >= 1, got {args.threads}")
        if args.bench < 0:
            raise SpecError(f"--bench must be >= 0, got {args.bench}")
        # Heavy imports only once the arguments are known to be usable.
        import torch
        from tqdm import tqdm

        from seemore.checkpoint import load_model, resolve_model_path
        from seemore.export.executorch_export import ExportError, export_executorch, set_runtime_threads

        checkpoint = resolve_model_path(args.checkpoint)
        model = load_model(checkpoint)
        specs = [
            ExportSpec(backend, precision, height, width, batch=args.batch, scale=model.scale)
            for backend, precision in (TARGETS[t] for t in dict.fromkeys(args.backends))
        ]
        for spec in specs:
            spec.check_model(model)
        int8_model = int8_source = None
        int8_specs = [s for s in specs if s.precision == "int8"]
        if args.int8_program is None and int8_specs and not args.ptq:
            # Default: the QAT program that `python quantization/qat.py` wrote for this model and size.
            from seemore.quantize import DEFAULT_OUT as QAT_OUT
            from seemore.quantize import program_name

            candidate = QAT_OUT / program_name(model.config, int8_specs[0], "qat")
            if candidate.is_file():
                args.int8_program = candidate
                print(f"INT8 from the QAT program {candidate}", file=sys.stderr)
            else:
                print(f"no QAT program at {candidate} (run `python quantization/qat.py` first): "
                      "INT8 by post-training quantization on training images", file=sys.stderr)
        if args.int8_program is not None:
            from seemore.checkpoint import file_sha256

            if not int8_specs:
                raise SpecError("--int8-program needs the xnnpack-int8 target in --backends")
            int8_model = _load_int8_program(args.int8_program, int8_specs[0])
            int8_source = {
                "method": "provided program",
                "program": str(args.int8_program),
                "sha256": file_sha256(args.int8_program),
            }
    except (SpecError, CheckpointError, DataError) as exc:
        return _fail(str(exc))

    torch.set_num_threads(args.threads or min(torch.get_num_threads(), 4))
    if args.threads:
        set_runtime_threads(args.threads)
    print(f"exporting {model.config.name} from {checkpoint} at {height}x{width} -> {args.out}", file=sys.stderr)
    results = []
    bar = tqdm(specs, unit="artifact", file=sys.stderr)
    try:
        for spec in bar:
            bar.set_description(spec.tag)
            results += export_executorch(
                model,
                [spec],
                args.out,
                checkpoint=checkpoint,
                data_root=args.data_root,
                int8_model=int8_model,
                int8_source=int8_source,
                calibration_limit=args.calibration_images,
                verify=not args.no_check,
                bench_runs=args.bench,
                progress=lambda msg: bar.set_postfix_str(msg.split(": ", 1)[-1], refresh=True),
            )
    except (SpecError, CheckpointError, DataError, ExportError) as exc:
        bar.close()
        return _fail(str(exc))
    except Exception as exc:  # a toolchain failure: one line, not a traceback
        bar.close()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _fail(f"export failed ({type(exc).__name__}): {first}", code=1)
    bar.close()
    print(_format_table(results))
    failed = [r.name for r in results if r.check.get("ran") and not r.check.get("passed")]
    if failed:
        return _fail(f"export check below threshold for {', '.join(failed)} (see the sidecar JSON)", code=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
