"""Host latency of every artifact of one checkpoint, side by side with eager PyTorch (``benchmarks/host_runtime.py``).

The artifacts are discovered through their contracts (under ``--root``) and run by the runner
of their runtime; targets that are missing there (by default XNNPACK FP32 and INT8 ``.pte``, the
ONNX Runtime FP32 baseline, and LiteRT FP32 and INT8 ``.tflite`` on LiteRT's XNNPACK delegate) are
exported first with the export driver into a temporary folder, INT8 from the program of this
checkpoint (found by SHA-256) or a quick PTQ (calibration changes the numerics, not the speed). All engines run in one process on the same
real-image input, taking turns (round-robin), so the noise of a shared machine hits them alike;
the table gives medians and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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
    make_parser,
    non_negative_int,
    positive_int,
    run_main,
    write_json,
)

PROG = "host_runtime.py"
DEFAULT_TARGETS: tuple[str, ...] = ("xnnpack-fp32", "xnnpack-int8", "onnx-fp32", "litert-fp32", "litert-int8")
# INT8 .pte speed-up targets over eager FP32 and over ONNX Runtime FP32 (the project's goals).
SPEEDUP_TARGETS = {"eager": 5.0, "onnxruntime": 2.5,
                   # LiteRT INT8 latency within this factor of the INT8 .pte (issue 12's bar)
                   "litert_int8_vs_pte": 1.3}
EAGER = "eager PyTorch FP32"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    p = make_parser(PROG, __doc__.split("\n\n")[0])
    add_model(p)
    add_size(p, what=" (720x1280 output at x4 by default)")
    p.add_argument("--root", type=Path, default=Path("artifacts"),
                   help="folder searched for artifacts of this checkpoint and size (default: artifacts)")
    p.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS), metavar="TARGET",
                   help=f"targets to time (default: {' '.join(DEFAULT_TARGETS)}); missing ones are exported first")
    p.add_argument("--runs", type=positive_int, default=10, help="timed rounds (default: 10)")
    p.add_argument("--warmup", type=non_negative_int, default=2, help="untimed rounds first (default: 2)")
    add_data_root(p)
    add_threads(p)
    add_json(p)
    add_progress(p)
    return p


def find_artifacts(root: Path, checkpoint_sha: str, height: int, width: int) -> dict[tuple[str, str, str], Path]:
    """Runtime artifacts under ``root`` made from this checkpoint at this size, by (runtime, backend, precision).

    Only artifacts whose file still has the hash their contract records count.
    """
    from seemore.contract import ContractError, discover
    from seemore.contract.store import check_file

    out: dict[tuple[str, str, str], Path] = {}
    if not root.is_dir():
        return out
    for found in discover(root):
        c = found.contract
        if c is None or c.kind != "runtime" or c.source.sha256 != checkpoint_sha:
            continue
        s = c.spec
        # Either layout: each engine is fed through its own contract's I/O (LiteRT's default is NHWC).
        if (s.height, s.width, s.batch, s.io_dtype) != (height, width, 1, "float32"):
            continue
        try:
            out[(s.runtime, s.backend, s.precision)] = check_file(found.path, c.artifact, "artifact")
        except ContractError:
            continue
    return out


def engines_for(model: Any, checkpoint: Path, target_names: Sequence[str], root: Path, height: int, width: int,
                scratch: Path, data_root: Path | None, say: Callable[[str], None]) -> list[tuple[Any, Path]]:
    """(target, artifact path) of every target: found under ``root``, or exported into ``scratch``."""
    from seemore.common.files import file_sha256
    from seemore.export.driver import ExportOptions, export_targets
    from seemore.export.targets import get_target

    targets = [get_target(n) for n in target_names]
    found = find_artifacts(root, file_sha256(checkpoint), height, width)
    out = []
    options = ExportOptions(height=height, width=width, data_root=data_root, verify=False, calibration_images=4,
                            program_dirs=(Path("artifacts") / "quantization", root))
    for target in targets:
        key = (target.runtime, target.backend, target.precision)
        if key in found:
            say(f"{target.name}: {found[key]}")
            out.append((target, found[key]))
            continue
        say(f"{target.name}: none under {root}; exporting one")
        result = export_targets(model, [target], scratch, checkpoint, options, progress=say)[0]
        out.append((target, result.path))
    return out


def engine_name(runtime: str, backend: str, precision: str) -> str:
    """An artifact's row name in the timing table, e.g. ``executorch xnnpack INT8``."""
    return f"{runtime} {backend} {precision.upper()}"


def format_timings(times: dict[str, list[float]], psnr: dict[str, float]) -> str:
    """Median, range, ratios to eager and to ONNX Runtime, PSNR against eager."""
    from seemore.common.tables import format_table

    med = {name: statistics.median(t) for name, t in times.items()}
    eager = med[EAGER]
    ort = next((m for n, m in med.items() if n.startswith("onnxruntime")), None)
    rows = []
    for name, t in times.items():
        rows.append([name, f"{med[name]:.1f}", f"{min(t):.0f}-{max(t):.0f}", f"{eager / med[name]:.2f}",
                     f"{ort / med[name]:.2f}" if ort else "-",
                     "ref" if name == EAGER else f"{psnr[name]:.1f} dB"])
    return format_table(["engine", "median ms", "min-max ms", "x eager", "x ORT", "PSNR vs eager"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        from seemore.toolchain_logs import quiet_toolchain_logs

        quiet_toolchain_logs()
        check_json_path(args.json)
        import torch

        from seemore.checkpoint import CheckpointError, load_model, resolve_model_path
        from seemore.common.tensors import psnr_db
        from seemore.common.timing import round_robin_ms
        from seemore.contract import ExportSpec, SpecError
        from seemore.export.base import ExportError
        from seemore.export.calibration import real_input
        from seemore.contract import contract_path, read_contract
        from seemore.export.targets import get_target
        from seemore.parity.harness import io_adapter
        from seemore.paths import resolve_data_root
        from seemore.runtime import get_runner

        def say(msg: str) -> None:
            if not args.no_progress:
                print(msg, file=sys.stderr, flush=True)

        height, width = args.size
        try:
            for name in args.targets:
                get_target(name)
            checkpoint = resolve_model_path(args.model)
            model = load_model(checkpoint).eval()
            ExportSpec("xnnpack", "fp32", height, width, scale=model.scale).check_model(model)
        except (CheckpointError, SpecError, ExportError) as exc:
            raise UsageError(str(exc)) from None
        data_root = resolve_data_root(args.data_root)
        apply_threads(args.threads)
        x = real_input(height, width, 1, data_root)
        engines: dict[str, Callable[[], Any]] = {EAGER: lambda: model(x)}
        with tempfile.TemporaryDirectory(prefix="seemore-bench-") as scratch:
            for target, path in engines_for(model, checkpoint, args.targets, args.root, height, width, Path(scratch),
                                            data_root, say):
                runner = get_runner(target.runtime)
                reason = "no runner" if runner is None else runner.available(path)
                if reason is not None:
                    say(f"{target.name}: not timed ({reason})")
                    continue
                spec = read_contract(contract_path(path)).spec
                run = io_adapter(runner.load(path), spec)
                engines[engine_name(target.runtime, target.backend, target.precision)] = (
                    lambda run=run: run(x))
            with torch.no_grad():
                want = model(x)
                psnr = {name: psnr_db(fn(), want) for name, fn in engines.items()}
                times = round_robin_ms(engines, args.runs, args.warmup,
                                       on_round=lambda r: say(f"round {r + 1}/{args.runs}"))
        print(f"{model.config.name}, input 1x3x{height}x{width} (output {height * model.scale}x"
              f"{width * model.scale}), {args.threads} threads, {args.runs} round-robin rounds, "
              f"CPU: {cpu_name()}")
        print(format_timings(times, psnr))
        med = {name: statistics.median(t) for name, t in times.items()}
        int8 = next((m for n, m in med.items() if n.endswith("INT8")), None)
        ort = next((m for n, m in med.items() if n.startswith("onnxruntime")), None)
        ratios: dict[str, float] = {}
        if int8:
            ratios["int8_vs_eager"] = med[EAGER] / int8
            print(f"INT8 vs eager FP32: {ratios['int8_vs_eager']:.2f}x (target >= {SPEEDUP_TARGETS['eager']}x)")
            if ort:
                ratios["int8_vs_onnxruntime"] = ort / int8
                print(f"INT8 vs ONNX Runtime FP32: {ratios['int8_vs_onnxruntime']:.2f}x "
                      f"(target >= {SPEEDUP_TARGETS['onnxruntime']}x)")
        litert_int8 = med.get(engine_name("litert", "litert", "int8"))
        pte_int8 = med.get(engine_name("executorch", "xnnpack", "int8"))
        if litert_int8 and pte_int8:
            ratios["litert_int8_vs_pte_int8"] = litert_int8 / pte_int8
            print(f"LiteRT INT8 latency / ExecuTorch XNNPACK INT8: {ratios['litert_int8_vs_pte_int8']:.2f}x "
                  f"(target <= {SPEEDUP_TARGETS['litert_int8_vs_pte']}x)")
        print("note: this machine is shared and noisy (timings move 30-50% between runs); compare the ratios "
              "of one run, not absolute times across runs.")
        if args.json is not None:
            write_json(args.json, {
                "model": model.config.name, "input": [1, 3, height, width], "threads": args.threads,
                "runs": args.runs, "cpu": cpu_name(), "median_ms": med, "times_ms": times,
                "psnr_vs_eager_db": psnr, "ratios": ratios, "targets": SPEEDUP_TARGETS,
            })
        return 0

    from seemore.contract import ContractError
    from seemore.paths import DataError
    from seemore.quantize.quantizers import QuantizeError

    return run_main(PROG, body, expected=(DataError, QuantizeError, ContractError))


def cpu_name() -> str:
    """The CPU model of this host (the README states it next to every host figure)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"
