"""FP16 safety of the deploy form: the largest activation of every op against fp16's limit.

    python benchmarks/fp16_safety.py                         # shipped x4 model, Set5 + Set14 + bundled photos
    python benchmarks/fp16_safety.py --sets Set5 --top 0 --json fp16.json

Runs the deploy form (what Core ML / the Neural Engine and Vulkan run in fp16) on every LR
image of the sets, records the largest |value| of every op, including intermediates inside
modules (the top-k mask's scaled differences, the LayerNorm's squares, residual sums), and
prints the largest ones with their fraction of the fp16 limit 65504, then the PSNR of the
fp16 output against the fp32 output per set. fp16 is emulated by default (fp32 ops, every
output rounded to fp16; the same stored values, faster on CPU); ``--real-fp16`` runs torch
fp16 instead. Exit status 1 when an activation reaches a quarter of the fp16 limit (16376) or
anything is non-finite. See :mod:`seemore.deploy.fp16`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from seemore import cli

PROG = "fp16_safety.py"


def build_parser() -> cli.OneLineParser:
    """The benchmark's argument parser."""
    from seemore.deploy.fp16 import BUNDLED, DEFAULT_SETS

    p = cli.make_parser(PROG, __doc__)
    cli.add_model(p)
    p.add_argument("--backend", choices=("coreml", "vulkan"), default="coreml",
                   help="whose deploy form runs in fp16: Core ML's (matmul context upsample) or the one every other "
                   "backend exports, Vulkan's included (default: coreml)")
    cli.add_data_root(p)
    p.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), metavar="SET",
                   help=f"benchmark set names or folders, '{BUNDLED}' for scikit-image's sample photos "
                   f"(default: {' '.join(DEFAULT_SETS)})")
    p.add_argument("--top", type=cli.non_negative_int, default=25, metavar="N",
                   help="layers shown in the table, largest first; 0 = all (default 25; --json has every op)")
    p.add_argument("--per-op", action="store_true",
                   help="one row per op instead of one per layer (a layer's row is its largest op)")
    p.add_argument("--real-fp16", action="store_true",
                   help="run torch fp16 (model.half()) instead of the emulation: slower on CPU, same stored values")
    cli.add_threads(p)
    cli.add_json(p)
    cli.add_progress(p)
    return p


def _run(args: argparse.Namespace) -> int:
    cli.check_json_path(args.json)
    import torch

    from seemore.common.progress import progress
    from seemore.deploy import DeploySeemoRe
    from seemore.deploy.fp16 import check_fp16, format_report, load_lr_images

    torch.set_num_threads(args.threads)
    model = DeploySeemoRe.from_checkpoint(args.model, args.backend)
    images = load_lr_images(args.sets, model.scale, args.data_root)
    bar = progress(total=len(images), desc="fp16 check", unit="image", enabled=not args.no_progress)

    def step(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        report = check_fp16(model, images, emulate=not args.real_fp16, progress=step)
    finally:
        bar.close()
    print(f"{model.config.name} x{model.scale}, {len(images)} LR images ({', '.join(report.psnr_by_set())})")
    print(format_report(report, top=args.top or None, per_op=args.per_op))
    if args.json is not None:
        cli.write_json(args.json, {"tool": "benchmarks/fp16_safety.py", "model": args.model, "backend": args.backend,
                                   "variant": model.config.name, "scale": model.scale, "sets": args.sets,
                                   "threads": args.threads, "torch": torch.__version__, **report.to_json()})
        print(f"wrote {args.json}")
    if not report.passes:
        worst = report.worst
        what = ("non-finite values" if report.nonfinite
                else f"{len(report.over_limit)} ops at or above {report.limit:.0f}")
        return cli.fail(PROG, f"fp16 bar failed: {what}; largest {worst.max_abs:.6g} at {worst.name}", 1)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; returns the exit status (1 when the fp16 bar fails)."""
    args = build_parser().parse_args(argv)
    from seemore.checkpoint import CheckpointError

    return cli.run_main(PROG, lambda: _run(args), expected=(CheckpointError,))


if __name__ == "__main__":
    raise SystemExit(main())
