"""The project's main job on bundled defaults: ``python -m seemore.pipeline`` (``bash run.sh pipeline``).

Steps, each a thin call into the library, each writing into ``--out``:

1. ``cost``: params and MACs of every variant (``seemore.info``) -> ``cost.json``
2. ``evaluate``: the shipped SeemoRe-T x4 and MATLAB bicubic on Set5/Set14 (``seemore.evaluate``)
   -> ``eval.json``
3. ``upscale``: the shipped model on a sample image (``seemore.upscale``) -> ``upscaled/``
4. ``quantize``: PTQ and QAT INT8 with the default recipe for XNNPACK, Core ML and LiteRT
   (``quantization/qat.py --backend xnnpack|coreml|litert``) -> ``quantization/`` (the QAT
   programs, their contracts, ``qat.json``, ``qat_coreml.json`` and ``qat_litert.json``)
5. ``export``: ExecuTorch XNNPACK FP32, XNNPACK INT8 (from the QAT program) and Vulkan FP16
   at 1x3x180x320 (``mobile/export_executorch.py``) -> ``executorch/``
6. ``coreml``: Core ML FP16, W8A8 (from the Core ML QAT program), int8-weight and 6-bit
   palettized packages and the Core ML-delegated ``.pte`` (``mobile/export_coreml.py``)
   -> ``coreml/``
7. ``litert``: LiteRT FP32, FP16-weight and INT8 (from the LiteRT QAT program) ``.tflite`` files
   with NHWC I/O (``mobile/export_tflite.py``) -> ``litert/``
8. ``parity``: every artifact in ``executorch/``, ``coreml/`` and ``litert/`` against PyTorch on
   Set5/Set14 (``mobile/parity.py``; Core ML packages by evaluating their MIL programs, ``.tflite``
   files in LiteRT's interpreter) -> ``parity.json``

Data come from the data root (``--data-root``, ``$SEEMORE_DATA`` or ``../shared/data``); without
one, the bundled sample photos are used and the pipeline says so.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seemore.checkpoint import CheckpointError, atomic_write, list_shipped, load_model
from seemore.paths import DataError, bundled_images, resolve_data_root

DEFAULT_MODEL = "seemore_t_x4"
PROG = "seemore-pipeline"


class StepError(RuntimeError):
    """A pipeline step failed; the message names the step and the cause in one line."""


@dataclass
class PipelineContext:
    """What every step needs: where to write, which data and model to use."""

    out: Path
    data_root: Path | None
    model_name: str
    threads: int
    export_size: tuple[int, int] = (180, 320)
    qat_steps: int | None = None
    # Set by the quantize step (per quantizer backend), read by the export steps.
    int8_programs: dict[str, Path] = field(default_factory=dict)
    # Bounds that a step found failed (reported at the end; the exit code is then 1).
    failures: list[str] = field(default_factory=list)
    # The steps selected: the quantize step makes only the programs the selected export steps
    # lower (all of them when no export step is selected).
    steps: tuple[str, ...] = ()

    @property
    def quantize_only(self) -> bool:
        """True when no selected step lowers an INT8 program."""
        return not any(step in self.steps for step in QUANT_FOR_STEP.values())

    def write_text(self, name: str, text: str) -> Path:
        """Write ``text`` atomically to ``out/name``."""
        path = self.out / name
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
        return path

    def write_json(self, name: str, doc: dict[str, Any]) -> Path:
        """Write ``doc`` as JSON atomically to ``out/name``."""
        return self.write_text(name, json.dumps(doc, indent=2) + "\n")


def step_cost(ctx: PipelineContext) -> str:
    """Params/MACs table of all variants (HR output 1280x720)."""
    from seemore.info import cost_table, format_table, rows_to_json

    rows = cost_table()
    print(format_table(rows))
    path = ctx.write_text("cost.json", rows_to_json(rows))
    return f"{len(rows)} variant/scale rows -> {path}"


def step_evaluate(ctx: PipelineContext) -> str:
    """Shipped model and bicubic on Set5/Set14 (or the bundled photos)."""
    from seemore.evaluate import evaluate_bicubic, evaluate_model, format_reports

    model = load_model(ctx.model_name)
    sets = ("Set5", "Set14")
    reports = [
        evaluate_model(model, sets, model.scale, ctx.data_root, progress=True, label=ctx.model_name),
        evaluate_bicubic(sets, model.scale, ctx.data_root, progress=True),
    ]
    print(format_reports(reports))
    path = ctx.write_json("eval.json", {"reports": [r.to_dict() for r in reports]})
    return f"{reports[0].summary()} (bicubic {reports[1].summary()}) -> {path}"


def _sample_image(data_root: Path | None) -> Path:
    if data_root is not None:
        candidate = data_root / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "butterflyx4.png"
        if candidate.is_file():
            return candidate
    return bundled_images()[0]


def step_upscale(ctx: PipelineContext) -> str:
    """Upscale one sample image as ``python -m seemore.upscale`` would."""
    from seemore.upscale import upscale_file

    model = load_model(ctx.model_name)
    source = _sample_image(ctx.data_root)
    target = ctx.out / "upscaled" / f"{source.stem}_x{model.scale}.png"
    result = upscale_file(model, source, target)  # the CLI's defaults (tile size, overlap, routing)
    return f"{source.name} {result.in_size} -> {target} {result.out_size}, {result.windows} window(s)"


# The quantizers the quantize step trains programs for, each one's summary file, and the
# export step that lowers its program.
QUANT_BACKENDS: dict[str, str] = {"xnnpack": "qat.json", "coreml": "qat_coreml.json", "litert": "qat_litert.json"}
QUANT_FOR_STEP: dict[str, str] = {"xnnpack": "export", "coreml": "coreml", "litert": "litert"}


def step_quantize(ctx: PipelineContext) -> str:
    """PTQ and QAT INT8 (default recipe) for each of :data:`QUANT_BACKENDS`, as
    ``python quantization/qat.py --backend <backend>`` runs it."""
    from seemore.checkpoint import resolve_model_path
    from seemore.contract import ExportSpec
    from seemore.quantize import QATSettings, format_summary, run_quantization

    checkpoint = resolve_model_path(ctx.model_name)
    height, width = ctx.export_size
    parts = []
    for backend, summary_file in QUANT_BACKENDS.items():
        if ctx.steps and QUANT_FOR_STEP[backend] not in ctx.steps and not ctx.quantize_only:
            continue  # no selected export step lowers this quantizer's program
        print(f"--- {backend} ---", flush=True)
        model = load_model(checkpoint)
        steps = {} if ctx.qat_steps is None else {"steps": ctx.qat_steps}
        settings = QATSettings(backend=backend, **steps)
        spec = ExportSpec(backend, "int8", height, width, scale=model.scale)
        result = run_quantization(model, settings, ctx.out / "quantization", checkpoint=checkpoint,
                                  data_root=ctx.data_root, spec=spec)
        print(format_summary(result))
        ctx.write_json(f"quantization/{summary_file}", result.to_dict())
        if result.program:
            ctx.int8_programs[backend] = Path(result.program)
        parts.append(f"{backend}: Set5 drop vs FP32 PTQ {result.drop_db('ptq_int8'):.3f} dB, "
                     f"QAT {result.drop_db('qat_int8'):.3f} dB")
    return "; ".join(parts)


def export_cli_targets(ctx: PipelineContext, runtime: str) -> str:
    """What ``mobile/export_<runtime>.py`` exports by default, into ``<out>/<runtime>/``.

    INT8 comes from the quantize step's program of the target's quantizer (or, when that step
    did not run, the program of this checkpoint in ``quantization/``, found by its SHA-256).
    """
    from seemore.checkpoint import resolve_model_path
    from seemore.export import DEFAULT_LAYOUTS, DEFAULT_TARGETS, ExportOptions, export_targets, get_target

    checkpoint = resolve_model_path(ctx.model_name)
    model = load_model(checkpoint)
    height, width = ctx.export_size
    results = []
    for name in DEFAULT_TARGETS[runtime]:
        target = get_target(name)
        program = ctx.int8_programs.get(target.quantizer) if target.quantizer else None
        options = ExportOptions(height=height, width=width, layout=DEFAULT_LAYOUTS[runtime],
                                data_root=ctx.data_root, int8_program=program,
                                program_dirs=(ctx.out / "quantization",))
        results += export_targets(model, [target], ctx.out / runtime, checkpoint, options,
                                  progress=lambda msg: print(msg, flush=True))
    parts = []
    for r in results:
        check = r.check
        state = f"{check['psnr_db']:.1f} dB {check.get('status')}" if check.get("ran") else "not run"
        size = f"{r.contract.artifact.bytes / 1e6:.2f} MB"
        parts.append(f"{r.spec.tag} {size}, {r.contract.structure.get('partitions')} partition(s) [{state}]")
        if r.failed:
            ctx.failures.append(f"export check of {r.name}")
    return "; ".join(parts)


def step_export(ctx: PipelineContext) -> str:
    """The ExecuTorch targets (XNNPACK FP32/INT8, Vulkan FP16) with contracts and export checks."""
    return export_cli_targets(ctx, "executorch")


def step_coreml(ctx: PipelineContext) -> str:
    """The Core ML packages (FP16, W8A8, int8 weights, 6-bit palettes) and the Core ML-delegated .pte."""
    return export_cli_targets(ctx, "coreml")


def step_litert(ctx: PipelineContext) -> str:
    """The LiteRT ``.tflite`` files (FP32, FP16 weights, INT8), NHWC I/O."""
    return export_cli_targets(ctx, "litert")


# The folders the parity step checks (what the export steps wrote).
PARITY_FOLDERS: tuple[str, ...] = ("executorch", "coreml", "litert")


def step_parity(ctx: PipelineContext) -> str:
    """The parity table of every artifact in :data:`PARITY_FOLDERS` (as ``python mobile/parity.py``)."""
    from seemore.parity import format_results, run_parity

    sets = ("Set5", "Set14")
    results = []
    for folder in PARITY_FOLDERS:
        if (ctx.out / folder).is_dir():
            results += run_parity(ctx.out / folder, ctx.data_root, sets)
    print(format_results(results))
    ctx.write_json("parity.json", {"root": str(ctx.out), "folders": list(PARITY_FOLDERS), "sets": list(sets),
                                   "results": [r.to_dict() for r in results]})
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
        if r.failed:
            ctx.failures.append(f"parity of {r.artifact}")
    return ", ".join(f"{n} {status}" for status, n in counts.items())


STEPS: dict[str, Callable[[PipelineContext], str]] = {
    "cost": step_cost,
    "evaluate": step_evaluate,
    "upscale": step_upscale,
    "quantize": step_quantize,
    "export": step_export,
    "coreml": step_coreml,
    "litert": step_litert,
    "parity": step_parity,
}


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    from seemore import cli

    p = cli.make_parser(PROG, __doc__)
    p.add_argument("--out", type=Path, default=Path("artifacts") / "pipeline",
                   help="output folder (default: artifacts/pipeline)")
    cli.add_data_root(p)
    cli.add_model(p)
    p.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS), help="steps to run (default: all)")
    cli.add_threads(p)
    p.add_argument("--qat-steps", type=cli.non_negative_int, default=None,
                   help="QAT steps of the quantize step (default: quantization/qat.py's default)")
    cli.add_size(p, what=" of the quantized program and the exported artifacts")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the selected steps in order; stop at the first failure with a one-line reason."""
    from seemore import cli

    args = build_parser().parse_args(argv)
    summary: list[tuple[str, float, str]] = []

    def body() -> int:
        from seemore.toolchain_logs import quiet_toolchain_logs

        quiet_toolchain_logs()
        cli.check_output_folder(args.out)
        try:
            data_root = resolve_data_root(args.data_root)
            if args.model == DEFAULT_MODEL and DEFAULT_MODEL not in list_shipped():
                raise CheckpointError(f"no shipped {DEFAULT_MODEL} checkpoint in this install")
            load_model(args.model)
        except (CheckpointError, DataError) as exc:
            raise cli.UsageError(str(exc)) from None
        # The same thread count on every machine: the quantize step's numbers depend on it.
        torch.set_num_threads(args.threads)
        ctx = PipelineContext(args.out, data_root, args.model, args.threads, args.size, args.qat_steps,
                              steps=tuple(args.steps))
        print(f"data root: {data_root if data_root else 'none (bundled sample photos)'}; model: {args.model}; "
              f"{args.threads} threads")
        for name in args.steps:
            print(f"\n=== {name} ===", flush=True)
            start = time.perf_counter()
            try:
                result = STEPS[name](ctx)
            except Exception as exc:  # any step's failure: one line naming the step
                raise StepError(f"step {name} failed ({type(exc).__name__}): {cli.one_line(exc)}") from None
            summary.append((name, time.perf_counter() - start, result))
        print("\n=== summary ===")
        for step, seconds, text in summary:
            print(f"{step:10s} {seconds:7.1f} s  {text}")
        if ctx.failures:
            return cli.fail(PROG, f"failed bounds: {', '.join(ctx.failures)}", code=1)
        return 0

    return cli.run_main(PROG, body, expected=(CheckpointError, DataError, StepError))


if __name__ == "__main__":
    raise SystemExit(main())
