"""What training optimises: the L1 + FFT loss, the learning-rate schedule, EMA weights."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seemore.train.config import TrainConfig

# --------------------------------------------------------------------------- losses


def fft_l1(pred: Tensor, target: Tensor) -> Tensor:
    """L1 between the stacked real and imaginary parts of ``rfft2`` (the paper's FFT loss)."""
    return F.l1_loss(torch.view_as_real(torch.fft.rfft2(pred)), torch.view_as_real(torch.fft.rfft2(target)))


def sr_loss(pred: Tensor, target: Tensor, fft_weight: float) -> Tensor:
    """L1 + ``fft_weight`` * FFT loss, computed in fp32 whatever the autocast dtype."""
    pred, target = pred.float(), target.float()
    loss = F.l1_loss(pred, target)
    if fft_weight:
        loss = loss + fft_weight * fft_l1(pred, target)
    return loss


# --------------------------------------------------------------------------- schedule


def lr_factor(cfg: TrainConfig, iteration: int) -> float:
    """Learning-rate multiplier at ``iteration`` (0-based step about to be taken)."""
    if cfg.warmup and iteration < cfg.warmup:
        return (iteration + 1) / cfg.warmup
    floor = cfg.min_lr / cfg.lr
    if cfg.scheduler == "cosine":
        span = max(1, cfg.iterations - cfg.warmup)
        t = min(1.0, (iteration - cfg.warmup) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.scheduler == "wsd":
        start = cfg.iterations - cfg.decay_iters
        if iteration < start:
            return 1.0
        t = min(1.0, (iteration - start) / max(1, cfg.decay_iters))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    return cfg.gamma ** sum(iteration >= m for m in cfg.milestones)


# --------------------------------------------------------------------------- EMA


class EMA:
    """Exponential moving average of the weights (BasicSR's ``net_g_ema``), with warm-up.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates: without
    the warm-up, a 0.999 average still holds 37 % of the random initialisation after 1,000
    steps, which ruins the shipped weights of any run shorter than several thousand steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow = d * shadow + (1 - d) * weights, with the warmed-up decay d."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)

    def state_dict(self) -> dict[str, Any]:
        """Shadow weights and update count, for the training state."""
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.shadow = state["shadow"]
        self.updates = int(state["updates"])
