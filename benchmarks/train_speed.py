"""Training-step speed of SeemoRe on this machine, several settings side by side.

Every setting trains its own copy of the same model on the same batches; the settings take
turns (round-robin), so machine noise hits them alike. Prints the median seconds per
iteration of each and its speed-up over plain eager fp32.

    python benchmarks/train_speed.py --variant seemore_t --scale 4 --batch 16 --patch 48 --rounds 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import seemore
from seemore.train import sr_loss

SETTINGS = {
    "eager fp32 (NCHW)": dict(channels_last=False, compile=False, bf16=False),
    "eager fp32 channels-last": dict(channels_last=True, compile=False, bf16=False),
    "compiled fp32 channels-last": dict(channels_last=True, compile=True, bf16=False),
    "eager bf16-autocast channels-last": dict(channels_last=True, compile=False, bf16=True),
}


def main() -> None:
    """Run the side-by-side benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="seemore_t")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=48, help="LR patch side")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per setting")
    p.add_argument("--steps", type=int, default=2, help="steps per round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", nargs="*", help="subset of settings (substring match)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = seemore.create_model(args.variant, args.scale).train()
    lr = torch.rand(args.batch, 3, args.patch, args.patch)
    hr = torch.rand(args.batch, 3, args.patch * args.scale, args.patch * args.scale)
    names = [n for n in SETTINGS if not args.only or any(o in n for o in args.only)]
    runs = {}
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
        print(f"{name}: warm-up {time.perf_counter() - t:.1f} s", flush=True)
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


if __name__ == "__main__":
    main()
