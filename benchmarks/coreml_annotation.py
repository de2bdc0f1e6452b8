"""CoreMLQuantizer's prepare_pt2e with and without the pattern shortcuts, and whether the programs are equal.

    python benchmarks/coreml_annotation.py                     # shipped x4 model, PTQ preparation
    python benchmarks/coreml_annotation.py --qat --json annotation.json

Captures the Core ML deploy form once, then prepares copies with the shortcuts (cold, building
its patterns), without them (ExecuTorch's stock annotation: about 7 minutes on 2 cores) and
with them again (warm), in one process. Prints the wall time and pattern exports of each and
exits 1 unless all three prepared programs have identical code. See
:func:`seemore.perf.annotation.compare_coreml_annotation`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seemore import cli

PROG = "coreml_annotation.py"


def build_parser() -> cli.OneLineParser:
    """The benchmark's argument parser."""
    p = cli.make_parser(PROG, __doc__.split("\n\n")[0])
    cli.add_model(p)
    cli.add_size(p, default=(32, 48), what=", of the capture (annotation does not depend on it)")
    p.add_argument("--qat", action="store_true", help="prepare for QAT (prepare_qat_pt2e) instead of PTQ")
    cli.add_threads(p)
    cli.add_json(p)
    return p


def _run(args: argparse.Namespace) -> int:
    cli.check_json_path(args.json)
    from seemore.common.tables import format_table
    from seemore.contract import ExportSpec
    from seemore.deploy import DeploySeemoRe
    from seemore.perf.annotation import compare_coreml_annotation, runs_to_json
    from seemore.quantize import capture, quantizers

    cli.apply_threads(args.threads)
    quantizers.backend_quantizer("coreml", is_qat=args.qat)  # a missing toolchain fails here, in one line
    deploy = DeploySeemoRe.from_checkpoint(args.model, "coreml")
    height, width = args.size
    captured = capture(deploy, ExportSpec(backend="coreml", precision="int8", height=height, width=width))
    runs, identical = compare_coreml_annotation(captured, args.qat,
                                                report=lambda line: print(line, file=sys.stderr, flush=True))
    base = next(r for r in runs if not r.shortcuts).seconds
    rows = [["with shortcuts" + (" (cold)" if i == 0 else " (warm)") if r.shortcuts else "stock",
             f"{r.seconds:.1f}", f"{r.pattern_exports}", f"{base / r.seconds:.1f}x"] for i, r in enumerate(runs)]
    print(format_table(["prepare_pt2e" + (" (QAT)" if args.qat else ""), "wall s", "pattern exports", "speed-up"],
                       rows, numbers_from=1))
    print(f"prepared programs identical: {'yes' if identical else 'NO'}")
    if args.json is not None:
        cli.write_json(args.json, {"tool": "benchmarks/coreml_annotation.py", "model": args.model,
                                   "threads": args.threads, "runs": runs_to_json(runs), "identical": identical})
        print(f"wrote {args.json}")
    return 0 if identical else cli.fail(PROG, "the shortcuts changed the prepared program", 1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; returns the exit status (1 when the programs differ)."""
    args = build_parser().parse_args(argv)
    from seemore.checkpoint import CheckpointError
    from seemore.quantize import QuantizeError

    return cli.run_main(PROG, lambda: _run(args), expected=(CheckpointError, QuantizeError))


if __name__ == "__main__":
    raise SystemExit(main())
