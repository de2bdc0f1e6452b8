"""Host latency of SeemoRe x4 at 180x320 -> 720x1280: eager PyTorch, ExecuTorch FP32/INT8, ONNX Runtime.

All engines run in one process on the same real-image input, taking turns (round-robin),
so the noise of a shared machine hits them alike; the table gives medians and ratios.

    python benchmarks/host_runtime.py                      # shipped seemore_t_x4, 2 threads
    python benchmarks/host_runtime.py --runs 20 --threads 1
    python benchmarks/host_runtime.py --int8-pte artifacts/executorch/seemore_t_x4_xnnpack_int8_180x320.pte

Engines:
* eager PyTorch FP32: the reference model (official formulation);
* ExecuTorch XNNPACK FP32 ``.pte``: ``--fp32-pte``, else lowered here from the deploy form;
* ExecuTorch XNNPACK INT8 ``.pte``: ``--int8-pte``, else lowered here from ``--int8-program``
  (default: the QAT program written by ``quantization/qat.py`` when it exists), else from a
  quick PTQ on a few training images (calibration changes numerics, not speed);
* ONNX Runtime FP32: ``torch.onnx.export`` (dynamo exporter) of the deploy form, CPU provider.
Targets: INT8 ``.pte`` >= 5x eager FP32 and >= 2.5x ONNX Runtime FP32.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seemore.cli import fail, write_json

PROG = "host_runtime.py"
DEFAULT_INT8_PROGRAM = Path("artifacts") / "quantization" / "seemore_t_x4_xnnpack_int8_qat_180x320.pt2"
TARGETS = {"eager": 5.0, "onnxruntime": 2.5}


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="seemore_t_x4", help="model (shipped name or file; default: seemore_t_x4)")
    p.add_argument("--size", default="180x320", help="LR input HxW (default: 180x320, 720p output at x4)")
    p.add_argument("--threads", type=int, default=2, help="threads for every engine (default: 2)")
    p.add_argument("--runs", type=int, default=10, help="timed rounds (default: 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default: 2)")
    p.add_argument("--fp32-pte", type=Path, default=None, help="FP32 XNNPACK .pte to time (default: lower one here)")
    p.add_argument("--int8-pte", type=Path, default=None, help="INT8 XNNPACK .pte to time (default: lower one here)")
    p.add_argument("--int8-program", type=Path, default=DEFAULT_INT8_PROGRAM,
                   help=f"quantized program to lower when no --int8-pte (default: {DEFAULT_INT8_PROGRAM})")
    p.add_argument("--skip", nargs="*", default=[], choices=["onnxruntime", "pte-fp32", "pte-int8"],
                   help="engines to leave out")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    return p


def _pte_bytes(model: Any, spec: Any) -> bytes:
    from seemore.export.executorch_export import lower, serialize

    return serialize(lower(model, spec))


def _int8_model(deploy: Any, spec: Any, program: Path, say: Callable[[str], None]) -> Any:
    """The quantized program to lower: the saved one if present, else a quick PTQ on training images."""
    if program.is_file():
        from seemore.quantize import load_program

        say(f"INT8: lowering the saved program {program}")
        return load_program(program)
    from seemore.quantize import capture, load_training_data, ptq_calibration_images, quantize_ptq

    say(f"INT8: {program} not found; quick PTQ on 4 training images (speed does not depend on calibration)")
    data = load_training_data(deploy.config.scale, progress=False)
    images = ptq_calibration_images(data, 4, 2 * deploy.config.min_input_size)
    return quantize_ptq(capture(deploy, spec), "xnnpack", images, progress=False)


def _onnx_session(deploy: Any, x: Any, threads: int) -> Any:
    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(deploy, (x,), str(path), dynamo=True, external_data=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    from seemore.toolchain_logs import quiet_toolchain_logs

    quiet_toolchain_logs()
    if args.threads < 1 or args.runs < 1 or args.warmup < 0:
        return fail(PROG, "--threads and --runs must be >= 1, --warmup >= 0")
    import torch

    from seemore.checkpoint import CheckpointError, load_model
    from seemore.deploy import DeploySeemoRe
    from seemore.export.calibration import real_input
    from seemore.export.executorch_export import psnr, set_runtime_threads
    from seemore.export.spec import ExportSpec, SpecError, parse_size
    from seemore.paths import DataError

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        height, width = parse_size(args.size)
        model = load_model(args.checkpoint).eval()
        spec = ExportSpec("xnnpack", "fp32", height, width, scale=model.scale)
        spec.check_model(model)
        for path in (args.fp32_pte, args.int8_pte):
            if path is not None and not path.is_file():
                raise CheckpointError(f"{path}: no such file")
        x = real_input(height, width)
    except (CheckpointError, SpecError, DataError) as exc:
        return fail(PROG, str(exc))

    torch.set_num_threads(args.threads)
    set_runtime_threads(args.threads)
    deploy = DeploySeemoRe.from_reference(model).eval()
    from seemore.export.executorch_export import load_pte

    engines: dict[str, Callable[[], Any]] = {}
    with torch.no_grad():
        want = model(x)
    engines["eager PyTorch FP32"] = lambda: model(x)
    outputs: dict[str, Any] = {}
    if "pte-fp32" not in args.skip:
        say("FP32 .pte: " + (str(args.fp32_pte) if args.fp32_pte else "lowering the deploy form"))
        payload = args.fp32_pte.read_bytes() if args.fp32_pte else _pte_bytes(deploy, spec)
        fp32_method = load_pte(payload)
        engines["ExecuTorch XNNPACK FP32"] = lambda: fp32_method.execute([x])[0]
    if "pte-int8" not in args.skip:
        if args.int8_pte:
            say(f"INT8 .pte: {args.int8_pte}")
            payload = args.int8_pte.read_bytes()
        else:
            int8_spec = spec.with_(precision="int8")
            payload = _pte_bytes(_int8_model(deploy, int8_spec, args.int8_program, say), int8_spec)
        int8_method = load_pte(payload)
        engines["ExecuTorch XNNPACK INT8"] = lambda: int8_method.execute([x])[0]
    if "onnxruntime" not in args.skip:
        say("ONNX: torch.onnx.export (dynamo) of the deploy form")
        session = _onnx_session(deploy, x, args.threads)
        feed = {session.get_inputs()[0].name: x.numpy()}
        engines["ONNX Runtime FP32"] = lambda: torch.from_numpy(session.run(None, feed)[0])

    with torch.no_grad():
        for name, fn in engines.items():
            outputs[name] = psnr(fn(), want)
        for _ in range(args.warmup):
            for fn in engines.values():
                fn()
        times: dict[str, list[float]] = {name: [] for name in engines}
        for r in range(args.runs):
            for name, fn in engines.items():
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000.0)
            say(f"round {r + 1}/{args.runs}")
    med = {name: statistics.median(t) for name, t in times.items()}
    eager = med["eager PyTorch FP32"]
    ort_ms = med.get("ONNX Runtime FP32")
    rows = [("engine", "median ms", "min-max ms", "x eager", "x ORT", "PSNR vs eager")]
    for name, t in times.items():
        rows.append((
            name,
            f"{med[name]:.1f}",
            f"{min(t):.0f}-{max(t):.0f}",
            f"{eager / med[name]:.2f}",
            f"{ort_ms / med[name]:.2f}" if ort_ms else "-",
            "ref" if name.startswith("eager") else f"{outputs[name]:.1f} dB",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    print(f"{model.config.name}, input 1x3x{height}x{width} (output {height * model.scale}x{width * model.scale}), "
          f"{args.threads} threads, {args.runs} round-robin rounds")
    print("\n".join(lines))
    int8 = med.get("ExecuTorch XNNPACK INT8")
    verdicts = {}
    if int8:
        verdicts["int8_vs_eager"] = eager / int8
        print(f"INT8 .pte vs eager FP32: {eager / int8:.2f}x (target >= {TARGETS['eager']}x)")
        if ort_ms:
            verdicts["int8_vs_onnxruntime"] = ort_ms / int8
            print(f"INT8 .pte vs ONNX Runtime FP32: {ort_ms / int8:.2f}x (target >= {TARGETS['onnxruntime']}x)")
    print("note: this machine is shared and noisy (timings move 30-50% between runs); compare the ratios "
          "of one run, not absolute times across runs.")
    if args.json is not None:
        payload_json = {
            "model": model.config.name,
            "input": [1, 3, height, width],
            "threads": args.threads,
            "runs": args.runs,
            "median_ms": med,
            "times_ms": times,
            "psnr_vs_eager_db": outputs,
            "ratios": verdicts,
            "targets": TARGETS,
        }
        write_json(args.json, payload_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
