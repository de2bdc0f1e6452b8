"""The PTQ and QAT recipe: capture, calibrate, fine-tune through fake quantizers, convert.

1. The deploy form is captured once with dynamic batch, height and width
   (:func:`seemore.deploy.capture.capture_for_quantization`), so one graph trains on patch
   batches and evaluates whole benchmark images of any size.
2. PTQ: ``prepare_pt2e`` (histogram observers), one pass over whole LR training images,
   ``convert_pt2e``.
3. QAT: ``prepare_qat_pt2e``; observer ranges calibrated on real training patches (XNNPACK:
   histogram activation ranges, frozen from then on; other observers as a running mean instead
   of the 0.01 moving average, which would need hundreds of batches to forget its first one);
   Adam fine-tunes the weights through the fake quantizers with the
   paper's loss (L1 + 0.1 FFT), cosine-decayed learning rate; for the last part of the run
   the observers are frozen so the weights settle on fixed quantization grids.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from seemore.common.progress import progress as progress_bar

from seemore.config import SeemoReConfig
from seemore.contract.spec import ExportSpec
from seemore.deploy.capture import capture_for_quantization
from seemore.quantize.quantizers import QUANT_BACKENDS, QuantizeError, backend_quantizer
from seemore.train.objective import sr_loss
from seemore.train.data import PatchSampler


@dataclass(frozen=True)
class QATSettings:
    """Hyper-parameters of one quantization run.

    Defaults fit the 15-minute budget on 2 CPU cores (10 min 23 s measured for the shipped
    checkpoint). The learning rate was chosen on an earlier SeemoRe-T x4 checkpoint (Set5,
    150-step runs, one thread): 3e-5 left QAT where PTQ was (-0.30 dB),
    2e-4 recovered 0.07 dB (-0.24 dB); distilling from the FP32 model instead of the HR
    target gave the same (-0.23 dB).
    """

    backend: str = "xnnpack"
    steps: int = 300
    lr: float = 2e-4
    batch_size: int = 8
    patch_size: int = 48
    calibration_batches: int = 16
    ptq_images: int = 32
    freeze_observers_at: float = 0.7
    fft_weight: float = 0.1
    seed: int = 0
    ptq_only: bool = False

    def validate(self, config: SeemoReConfig | None = None) -> None:
        """Raise :class:`QuantizeError` on settings that cannot work."""
        if self.backend not in QUANT_BACKENDS:
            raise QuantizeError(f"unknown backend {self.backend!r}; choose from {', '.join(QUANT_BACKENDS)}")
        for name in ("steps", "calibration_batches", "ptq_images"):
            if getattr(self, name) < (0 if name == "steps" else 1):
                raise QuantizeError(f"{name} must be {'>= 0' if name == 'steps' else '>= 1'}, got {getattr(self, name)}")
        if self.batch_size < 2:
            # Batch 1 lets export specialise the batch dimension; training needs real batches anyway.
            raise QuantizeError(f"batch size must be >= 2, got {self.batch_size}")
        if not self.lr > 0:
            raise QuantizeError(f"learning rate must be > 0, got {self.lr}")
        if not 0.0 <= self.freeze_observers_at <= 1.0:
            raise QuantizeError(f"freeze_observers_at must be in [0, 1], got {self.freeze_observers_at}")
        smallest = 2 * (config.min_input_size if config is not None else 16)
        if self.patch_size < smallest:
            raise QuantizeError(f"patch size must be >= {smallest} LR pixels for this model, got {self.patch_size}")


def fake_quantizers(model: nn.Module) -> list[nn.Module]:
    """The observer / fake-quantize modules of a prepared PT2E model."""
    from torchao.quantization.pt2e.fake_quantize import FakeQuantizeBase

    return [m for m in model.modules() if isinstance(m, FakeQuantizeBase)]


def calibrate_qat_observers(
    prepared: torch.fx.GraphModule, batches: Sequence[Tensor] | Iterator[Tensor], total: int | None = None,
    progress: bool = True,
) -> int:
    """Initialise QAT observer ranges as the running mean of per-batch min/max over ``batches``.

    Moving-average observers keep ``0.01`` of each new batch, so their first batch would
    dominate for hundreds of steps; giving batch ``i`` the weight ``1 / (i + 1)`` makes the
    range the plain mean over all calibration batches. The original constants are restored
    afterwards. Returns the number of batches seen.
    """
    observers = [fq.activation_post_process for fq in fake_quantizers(prepared)]
    averaging = [(obs, obs.averaging_constant) for obs in observers if hasattr(obs, "averaging_constant")]
    seen = 0
    try:
        with torch.no_grad():
            for x in progress_bar(batches, total=total, desc="QAT calibration", unit="batch",
                                  enabled=progress, leave=False):
                for obs, _ in averaging:
                    obs.averaging_constant = 1.0 / (seen + 1)
                prepared(x)
                seen += 1
    finally:
        for obs, constant in averaging:
            obs.averaging_constant = constant
    return seen


def freeze_activation_ranges(model: nn.Module) -> int:
    """Freeze every histogram-calibrated activation fake-quantizer; returns how many.

    Those ranges are final once calibrated (:func:`_histogram_activation_ranges`);
    moving-average activation ranges and the weight fake-quantizers (per channel) keep
    tracking the model as it trains.
    """
    from torchao.quantization.pt2e import HistogramObserver

    frozen = 0
    for fq in fake_quantizers(model):
        if isinstance(getattr(fq, "activation_post_process", None), HistogramObserver):
            fq.disable_observer()
            frozen += 1
    return frozen


def set_observers(model: nn.Module, enabled: bool) -> None:
    """Enable or freeze every observer of a prepared model (fake quantization stays on)."""
    from torchao.quantization.pt2e import disable_observer, enable_observer

    model.apply(enable_observer if enabled else disable_observer)


def evaluable(program: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Let ``.eval()``/``.train()`` be called on an exported program (evaluate_model does)."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval

    return allow_exported_model_train_eval(program)


def capture(deploy: nn.Module, spec: ExportSpec) -> torch.fx.GraphModule:
    """The deploy form captured once for PTQ and QAT (dynamic batch, height and width).

    Both :func:`quantize_ptq` and :func:`prepare_qat` work on copies, so one capture serves both.
    """
    return capture_for_quantization(deploy, spec)


def quantize_ptq(
    captured: torch.fx.GraphModule, backend: str, images: Sequence[Tensor], progress: bool = True
) -> torch.fx.GraphModule:
    """Post-training quantization of a copy of ``captured`` with ``backend``'s quantizer on real ``images``.

    Returns the converted (Q/DQ) program.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not images:
        raise QuantizeError("PTQ needs at least one calibration image")
    prepared = prepare_pt2e(copy.deepcopy(captured), backend_quantizer(backend, is_qat=False))
    with torch.no_grad():
        for img in progress_bar(images, desc="PTQ calibration", unit="img", enabled=progress,
                                leave=False):
            prepared(img)
    return convert_pt2e(prepared)


def cosine_lr(base: float, step: int, steps: int) -> float:
    """Cosine decay from ``base`` at step 0 to 0 after ``steps`` steps."""
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, steps) / max(steps, 1)))


def prepare_qat(captured: torch.fx.GraphModule, backend: str) -> torch.fx.GraphModule:
    """A copy of ``captured`` with ``backend``'s fake quantizers inserted, ready for QAT."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    return prepare_qat_pt2e(copy.deepcopy(captured), backend_quantizer(backend, is_qat=True))


def train_qat(
    prepared: torch.fx.GraphModule, sampler: PatchSampler, settings: QATSettings, progress: bool = True
) -> dict[str, Any]:
    """Fine-tune a QAT-prepared program in place; returns the loss record.

    Batch ``i`` is ``sampler.batch(i, batch_size)`` (reproducible). Histogram-calibrated
    activation ranges (the XNNPACK quantizer's) are frozen from the start; the other
    observers from step ``freeze_observers_at * steps`` on.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

    frozen_activations = freeze_activation_ranges(prepared)
    params = [p for p in prepared.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr, betas=(0.9, 0.99))
    freeze_at = int(round(settings.freeze_observers_at * settings.steps))
    losses: list[float] = []
    move_exported_model_to_train(prepared)
    bar = progress_bar(range(settings.steps), desc="QAT", unit="step", enabled=progress)
    try:
        for step in bar:
            if step == freeze_at:
                set_observers(prepared, False)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(settings.lr, step, settings.steps)
            lr_np, hr_np = sampler.batch(step, settings.batch_size)
            loss = sr_loss(prepared(torch.from_numpy(lr_np)), torch.from_numpy(hr_np), settings.fft_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.item()))
            if step % 10 == 0 or step == settings.steps - 1:
                bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}")
    finally:
        bar.close()
        move_exported_model_to_eval(prepared)
    window = max(1, min(25, len(losses) // 4)) if losses else 1
    return {
        "steps": len(losses),
        "observers_frozen_at_step": freeze_at if freeze_at < settings.steps else None,
        "activation_ranges": (
            f"histogram calibration, frozen from step 0 ({frozen_activations} activation quantizers)"
            if frozen_activations else "moving-average min/max, frozen with the weight ranges"
        ),
        "loss_first": float(np.mean(losses[:window])) if losses else None,
        "loss_last": float(np.mean(losses[-window:])) if losses else None,
        "loss_window": window,
    }


def _patch_batches(sampler: PatchSampler, count: int, batch_size: int, offset: int) -> Iterator[Tensor]:
    """LR patch batches for observer calibration, disjoint from the training batches' indices."""
    for i in range(count):
        yield torch.from_numpy(sampler.batch(offset + i, batch_size)[0])
