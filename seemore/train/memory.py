"""The memory a training step needs, estimated from the config and checked before the first step."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import torch

from seemore.common.memory import peak_rss_bytes, reset_peak_rss, rss_bytes
from seemore.config import get_config
from seemore.model import SeemoRe
from seemore.train.config import MIN_PATCH_SIZE, ConfigError, TrainConfig
from seemore.train.objective import EMA, sr_loss

# Peak memory of one SeemoRe training step (fp32 forward + backward, Adam, L1 + FFT loss, EMA,
# channels-last), in bytes per LR pixel of one sample per unit of embedding_dim * num_layers:
# activations dominate, and they are LR-sized feature maps of C channels in each of L groups
# (the upsampler's and the loss's HR tensors are within the noise: x2 and x4 agree to 5 %).
# Calibrated as the peak-RSS growth of 2 steps in a fresh process started from a shell (ru_maxrss then;
# measure_step_memory reads VmHWM now, which does not need that: T x4 64/1 gave 422 MiB, x2 32/1 132 MiB),
# 1 thread, torch 2.13 CPU, 2-core Xeon; one process per measurement:
#   .venv/bin/python -c "from seemore.train import measure_step_memory as m; print(m('seemore_t', 4, 64, 1))"
# growth in MiB (bytes per unit):
#   seemore_t x4 (C*L 216): patch 32 batch 1: 129 (611); 64/1: 462 (547), with 8 steps 464 (550);
#                           96/1: 953 (502); 128/1: 1703 (505); 32/4: 465 (551); 48/16: 3195 (421)
#   seemore_t x2:           64/1: 437 (518)
#   seemore_b x4 (C*L 384): 48/1: 422 (500)
#   seemore_l x4 (C*L 768): 32/1: 365 (487)
# 600 is above every slope (10-20 % margin at batch 1; the shipped recipe, 48/16, is estimated at
# 4.5 GiB for 3.1 GiB measured); the small patches' excess is a constant (allocator, FFT plans),
# covered by STEP_FIXED_BYTES. CUDA was not measured: the same fp32 estimate is used there (an
# upper bound under fp16/bf16 autocast).
ACTIVATION_BYTES = 600
STEP_FIXED_BYTES = 64 << 20
# Batches alive at once: the prefetch queue (3), the one being built and the one in the step.
BATCHES_IN_FLIGHT = 5


def estimate_step_bytes(cfg: TrainConfig) -> int:
    """Peak memory of a training step of ``cfg`` beyond what the process holds before it."""
    model = get_config(cfg.variant, cfg.scale)
    lr_pixels = cfg.patch_size * cfg.patch_size
    activations = ACTIVATION_BYTES * model.embedding_dim * model.num_layers * lr_pixels * cfg.batch_size
    batches = BATCHES_IN_FLIGHT * cfg.batch_size * 3 * 4 * lr_pixels * (1 + cfg.scale * cfg.scale)  # float32
    return STEP_FIXED_BYTES + activations + batches


def _cgroup_limit() -> int | None:
    """Memory left under this process's cgroup (v2) limit, if there is one."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def available_memory(device: torch.device) -> int | None:
    """Bytes free for training on ``device``: CUDA's free memory, else MemAvailable (None if unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    free: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    cgroup = _cgroup_limit()
    return min(free, cgroup) if cgroup is not None else free


def format_bytes(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_memory(cfg: TrainConfig, device: torch.device, extra: int = 0, what: str = "") -> None:
    """:class:`ConfigError` when a training step (plus ``extra`` bytes) will not fit the free memory.

    CPU ranks of one machine share its memory, so the need is multiplied by their number.
    """
    free = available_memory(device)
    if free is None:
        return
    sharing = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if device.type == "cpu" else 1
    need = (estimate_step_bytes(cfg) + extra) * sharing
    if need <= free:
        return
    one = dataclasses.replace(cfg, batch_size=1)
    per_sample = estimate_step_bytes(one) - STEP_FIXED_BYTES
    budget = free / sharing - STEP_FIXED_BYTES - extra
    batch_max = int(budget // per_sample) if per_sample > 0 else 0
    per_pixel = per_sample / (cfg.patch_size * cfg.patch_size)
    patch_max = int(math.sqrt(max(0.0, budget) / (cfg.batch_size * per_pixel)))
    hints = []
    if batch_max >= 1:
        hints.append(f"batch_size to at most {batch_max}")
    if patch_max >= MIN_PATCH_SIZE:
        hints.append(f"patch_size to at most {patch_max}")
    hint = "lower " + " or ".join(hints) if hints else "lower batch_size and patch_size"
    raise ConfigError(
        f"memory: a training step of {cfg.variant} x{cfg.scale} at batch_size {cfg.batch_size}, patch_size "
        f"{cfg.patch_size}{what} needs about {format_bytes(need)} but {format_bytes(free)} is available on {device}; {hint}"
    )


def measure_step_memory(variant: str, scale: int, patch_size: int, batch_size: int, steps: int = 2) -> int:
    """Peak-RSS growth, in bytes, of ``steps`` CPU training steps (the calibration of :data:`ACTIVATION_BYTES`).

    Linux only (``/proc/self``); best in a fresh process, whose allocator has no free memory to
    reuse. Mirrors :meth:`Trainer._step` with EMA and channels-last, one thread.
    """
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = SeemoRe(get_config(variant, scale)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    ema = EMA(model, 0.999)
    lr = torch.rand(batch_size, 3, patch_size, patch_size).contiguous(memory_format=torch.channels_last)
    hr = torch.rand(batch_size, 3, patch_size * scale, patch_size * scale)
    reset_peak_rss()
    before = rss_bytes()
    for _ in range(steps):
        loss = sr_loss(model(lr), hr, 0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update(model)
    return peak_rss_bytes() - before
