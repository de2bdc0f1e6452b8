"""Training-step speed of SeemoRe on this machine, several settings side by side.

Every setting trains its own copy of the same model on the same batches; the settings take
turns (round-robin), so machine noise hits them alike. Prints the median seconds per
iteration of each and its speed-up over plain eager fp32.

    python benchmarks/train_speed.py --variant seemore_t --scale 4 --batch 16 --patch 48 --rounds 5
    python benchmarks/train_speed.py --threads 1 --only compiled --json train_speed.json
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable, Sequence

import torch

import seemore
from seemore import cli
from seemore.config import SUPPORTED_SCALES, list_variants
from seemore.train.objective import sr_loss

PROG = "train_speed.py"

SETTINGS = {
    "eager fp32 (NCHW)": dict(channels_last=False, compile=False, bf16=False),
    "eager fp32 channels-last": dict(channels_last=True, compile=False, bf16=False),
    "compiled fp32 channels-last": dict(channels_last=True, compile=True, bf16=False),
    "eager bf16-autocast channels-last": dict(channels_last=True, compile=False, bf16=True),
}


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's argument parser."""
    p = cli.make_parser(PROG, __doc__)
    p.add_argument("--variant", default="seemore_t", choices=list_variants())
    p.add_argument("--scale", type=int, default=4, choices=SUPPORTED_SCALES)
    p.add_argument("--batch", type=cli.positive_int, default=16, metavar="N")
    p.add_argument("--patch", type=cli.positive_int, default=48, metavar="N", help="LR patch side")
    p.add_argument("--rounds", type=cli.positive_int, default=5, metavar="N", help="timed rounds per setting")
    p.add_argument("--steps", type=cli.positive_int, default=2, metavar="N", help="steps per round")
    cli.add_threads(p)
    p.add_argument("--only", nargs="*", help="subset of settings (substring match)")
    cli.add_json(p)
    return p


def _run(args: argparse.Namespace) -> int:
    cli.check_json_path(args.json)
    names = [n for n in SETTINGS if not args.only or any(o in n for o in args.only)]
    if not names:
        raise cli.UsageError(f"--only {' '.join(args.only)}: matches none of: {', '.join(SETTINGS)}")
    # Only PyTorch runs here; cli.apply_threads would also import the ExecuTorch runtime.
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = seemore.create_model(args.variant, args.scale).train()
    side = base.config.min_input_size
    if args.patch < side:  # each stride-4 aggregation needs at least 4 pixels
        raise cli.UsageError(f"--patch {args.patch}: {base.config.name} needs at least {side}")
    lr = torch.rand(args.batch, 3, args.patch, args.patch)
    hr = torch.rand(args.batch, 3, args.patch * args.scale, args.patch * args.scale)
    runs: dict[str, tuple[Callable[[], None], list[float]]] = {}
    warmups: dict[str, float] = {}
    for name in names:
        s = SETTINGS[name]
        model = copy.deepcopy(base)
        x = lr
        if s["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
            x = lr.contiguous(memory_format=torch.channels_last)
        net = torch.compile(model) if s["compile"] else model
        opt = torch.optim.Adam(model.parameters(), 1e-3, betas=(0.9, 0.99))

        def step(net=net, opt=opt, x=x, bf16=s["bf16"]) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(x)
            loss = sr_loss(out, hr, 0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t = time.perf_counter()
        step()
        step()  # warm-up (and compilation)
        warmups[name] = time.perf_counter() - t
        print(f"{name}: warm-up {warmups[name]:.1f} s", flush=True)
        runs[name] = (step, [])
    for _ in range(args.rounds):
        for name, (step, times) in runs.items():
            for _ in range(args.steps):
                t = time.perf_counter()
                step()
                times.append(time.perf_counter() - t)
    ref = statistics.median(runs[names[0]][1])
    print(f"\n{args.variant} x{args.scale}, batch {args.batch} of {args.patch}x{args.patch}, {args.threads} threads, "
          f"{args.rounds * args.steps} timed steps each (torch {torch.__version__})")
    print(f"{'setting':36s} {'s/iter':>8s} {'min':>8s} {'speed-up':>9s}")
    for name, (_, times) in runs.items():
        med = statistics.median(times)
        print(f"{name:36s} {med:8.3f} {min(times):8.3f} {ref / med:8.2f}x")
    if args.json is not None:
        cli.write_json(args.json, {
            "tool": "benchmarks/train_speed.py",
            "variant": args.variant, "scale": args.scale, "batch": args.batch, "patch": args.patch,
            "threads": args.threads, "rounds": args.rounds, "steps": args.steps, "torch": torch.__version__,
            "reference": names[0],
            "settings": {
                name: {
                    "median_s": statistics.median(times), "min_s": min(times), "warmup_s": warmups[name],
                    "speedup": ref / statistics.median(times), "times_s": times,
                }
                for name, (_, times) in runs.items()
            },
        })
        print(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the side-by-side benchmark, print the table; returns the exit status."""
    args = build_parser().parse_args(argv)
    return cli.run_main(PROG, lambda: _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
