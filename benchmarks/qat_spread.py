"""How reproducible the INT8 numbers are: ``quantization/qat.py`` run several times, one process per run.

    python benchmarks/qat_spread.py --threads 2 2 1          # two runs at 2 threads, one at 1
    python benchmarks/qat_spread.py --threads 1 2 4 --ptq-only --json spread.json

Every random choice of a run is seeded, so two runs with the same thread count on one machine
must print the same numbers; another thread count changes the float summation order of the
convolutions, and QAT then follows a slightly different path. The table gives each run's PTQ and
QAT PSNR drop against FP32 on every set and the spread (max - min) per column. Runs are
sequential: two at once on 2 cores would only slow each other down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from seemore import cli
from seemore.common.tables import format_table

PROG = "qat_spread.py"
QAT_SCRIPT = Path(__file__).resolve().parent.parent / "quantization" / "qat.py"


def build_parser() -> cli.OneLineParser:
    """Command-line interface."""
    p = cli.make_parser(PROG, __doc__.split("\n\n")[0])
    cli.add_model(p)
    p.add_argument("--threads", nargs="+", type=cli.positive_int, default=[2, 2, 1], metavar="N",
                   help="thread count of each run, in order (default: 2 2 1)")
    p.add_argument("--ptq-only", action="store_true", help="PTQ runs only (minutes instead of ten per run)")
    cli.add_data_root(p)
    cli.add_json(p)
    return p


def run_once(model: str, threads: int, ptq_only: bool, data_root: str | None, folder: Path) -> dict[str, object]:
    """One ``qat.py`` run in its own process; returns its ``--json`` summary."""
    out = folder / f"run{len(list(folder.iterdir()))}"
    js = out.with_suffix(".json")
    cmd = [sys.executable, str(QAT_SCRIPT), "--model", model, "--threads", str(threads), "--out", str(out),
           "--json", str(js), "--no-progress"]
    cmd += ["--ptq-only"] if ptq_only else []
    cmd += ["--data-root", data_root] if data_root else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"qat.py with {threads} threads failed: {tail}")
    return json.loads(js.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        cli.check_json_path(args.json)
        runs = []
        with tempfile.TemporaryDirectory(prefix="seemore-spread-") as tmp:
            for i, threads in enumerate(args.threads):
                print(f"run {i + 1}/{len(args.threads)}: {threads} thread(s)", file=sys.stderr, flush=True)
                summary = run_once(args.model, threads, args.ptq_only, args.data_root, Path(tmp))
                runs.append({"threads": threads, "psnr_drop_db": summary["psnr_drop_db"],
                             "wall_s": summary["timing_s"]["total"]})
        columns = [(m, s) for m in ("ptq_int8", "qat_int8") for s in runs[0]["psnr_drop_db"].get(m, {})]
        rows = [[f"{r['threads']}", *(f"{r['psnr_drop_db'][m][s]:.4f}" for m, s in columns), f"{r['wall_s']:.0f}"]
                for r in runs]
        spread = [max(r["psnr_drop_db"][m][s] for r in runs) - min(r["psnr_drop_db"][m][s] for r in runs)
                  for m, s in columns]
        rows.append(["spread", *(f"{v:.4f}" for v in spread), ""])
        header = ["threads", *(f"{m.split('_')[0].upper()} {s} drop dB" for m, s in columns), "wall s"]
        print(format_table(header, rows, numbers_from=1))
        if args.json is not None:
            cli.write_json(args.json, {"runs": runs, "spread_db": dict(zip([f"{m}/{s}" for m, s in columns], spread))})
        return 0

    return cli.run_main(PROG, body)


if __name__ == "__main__":
    raise SystemExit(main())
