"""INT8 quantization of SeemoRe with PT2E: calibration (PTQ) and quantization-aware training (QAT).

Pipeline (``python quantization/qat.py`` is a thin CLI over :func:`run_quantization`):

1. The deploy form (:class:`seemore.deploy.DeploySeemoRe`) is captured once with
   :func:`seemore.export.capture_for_quantization`: batch >= 2 in the example and dynamic
   batch, height and width, so one graph trains on patch batches and evaluates whole
   benchmark images of any size (>= 32 LR pixels per side for T/B).
2. The backend's own PT2E quantizer annotates it (:func:`backend_quantizer`): a program
   must be trained with the quantizer it will be lowered with, because each backend puts
   its quantize/dequantize pairs in different places.
3. PTQ: ``prepare_pt2e`` (histogram observers), one pass over whole LR *training* images,
   ``convert_pt2e``.
4. QAT: ``prepare_qat_pt2e`` (fake quantization with moving-average observers); the observer
   ranges are first calibrated on real training patches with a running mean (instead of
   the 0.01 moving average, which would need hundreds of batches to forget its first one);
   then Adam fine-tunes the weights through the fake quantizers on real LR/HR patches with
   the paper's loss (L1 + 0.1 FFT), cosine-decayed learning rate; for the last part of the
   run the observers are frozen so the weights settle on fixed quantization grids.
5. FP32, PTQ INT8 and QAT INT8 are evaluated with the standard protocol
   (:func:`seemore.evaluate.evaluate_model`, Y channel, crop = scale) on whole LR images,
   the converted (Q/DQ, "fake-quantized") programs running in PyTorch.
6. The converted program is exported again at the export spec's fixed input size
   (default 1x3x180x320) and saved with ``torch.export.save`` plus a sidecar JSON
   (:mod:`seemore.export.artifact`), both atomically, for the backend exporters
   (``mobile/export_executorch.py --int8-program``).

Calibration and training only ever see training images (``<data_root>/train``, T91 and
BSD200 here), never the Set5/Set14 evaluation images; without a data root the bundled
scikit-image photos are used, and the user is told.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from seemore.checkpoint import file_sha256
from seemore.config import SeemoReConfig
from seemore.deploy import DeploySeemoRe
from seemore.export.spec import ExportSpec, capture_for_quantization, export_program
from seemore.model import SeemoRe
from seemore.paths import DataError, bundled_images, note_fallback, resolve_data_root
from seemore.train import sr_loss
from seemore.train_data import PatchSampler, TrainImage, degrade, load_training_images, read_rgb

QUANT_BACKENDS: tuple[str, ...] = ("xnnpack", "coreml", "litert")
EVAL_SETS: tuple[str, ...] = ("Set5", "Set14")
DEFAULT_OUT = Path("artifacts") / "quantization"
PROGRAM_KIND = "pt2e-quantized-program"
# Set5 x4 PSNR that QAT INT8 may lose against FP32 (the project's target).
MAX_QAT_DROP_DB = 0.1

ProgressFn = Callable[[str], None]


class QuantizeError(RuntimeError):
    """Quantization cannot proceed (unavailable backend, bad settings); one-line message."""


# --------------------------------------------------------------------------- quantizers


def _fp32_modules() -> tuple[type[nn.Module], ...]:
    """Module types kept in float by every backend (the XNNPACK exporter's choice, shared)."""
    from seemore.export.executorch_export import FP32_MODULES

    return FP32_MODULES


def _coreml_quantizer(is_qat: bool) -> Any:
    """Core ML's PT2E quantizer: int8 symmetric per-channel weights, 8-bit activations.

    The same configuration serves PTQ and QAT (its observers are FakeQuantize modules
    with moving-average min/max that act as plain observers under ``prepare_pt2e``).
    """
    del is_qat
    from coremltools.optimize.torch.quantization.quantization_config import (
        LinearQuantizerConfig,
        ModuleLinearQuantizerConfig,
    )
    from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer

    global_config = ModuleLinearQuantizerConfig(
        quantization_scheme="symmetric",
        activation_dtype=torch.quint8,
        weight_dtype=torch.qint8,
        weight_per_channel=True,
    )
    # None = leave these modules in float (router, top-k mask, LayerNorm), as for XNNPACK.
    config = LinearQuantizerConfig(
        global_config=global_config, module_type_configs={t: None for t in _fp32_modules()}
    )
    return CoreMLQuantizer(config)


class _FunctionAsModule(nn.Module):
    """Wraps a pattern function so that ``torch.export`` (which now wants a Module) accepts it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


@contextlib.contextmanager
def _litert_pattern_shim() -> Iterator[None]:
    """Let litert-torch's QAT-only conv+BN annotators build their match patterns.

    litert-torch 0.10 hands a plain function to torchao's pattern exporter, which calls
    ``torch.export.export`` on it; torch 2.13 rejects non-Modules there. Wrapping the
    function in a Module exports the same graph. SeemoRe has no BatchNorm, so these
    patterns match nothing here; the shim only lets annotation run to the end.
    """
    import litert_torch.quantize.pt2e_quantizer_utils as utils

    original = utils._get_aten_graph_module_for_pattern

    def patched(pattern: Any, example_inputs: Any, is_cuda: bool = False, **kwargs: Any) -> Any:
        if not isinstance(pattern, nn.Module):
            pattern = _FunctionAsModule(pattern)
        return original(pattern, example_inputs, is_cuda, **kwargs)

    utils._get_aten_graph_module_for_pattern = patched
    try:
        yield
    finally:
        utils._get_aten_graph_module_for_pattern = original


def _litert_quantizer(is_qat: bool) -> Any:
    """litert-torch's PT2E quantizer (int8 per-channel weights, int8 activations), QAT-shimmed."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    class ShimmedPT2EQuantizer(PT2EQuantizer):  # type: ignore[misc, valid-type]
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            with _litert_pattern_shim():
                return super().annotate(model)

    quantizer = ShimmedPT2EQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=is_qat))
    for module_type in _fp32_modules():
        quantizer.set_module_type(module_type, None)
    return quantizer


def _histogram_activation_ranges(quantizer: Any) -> Any:
    """Give a QAT quantizer's activation fake-quantizers PTQ's histogram observer, in place.

    The stock QAT configuration tracks a moving average of min/max, whose ranges are wider
    than the histogram's error-minimising ones: on the shipped x4 model, QAT from them only
    climbed back to PTQ's accuracy. Calibrated with a histogram and then frozen
    (:func:`train_qat`), QAT starts where PTQ is and the weights adapt to those ranges.
    """
    from torchao.quantization.pt2e import HistogramObserver
    from torchao.quantization.pt2e.fake_quantize import FakeQuantize

    config = quantizer.global_config
    histogram = dataclasses.replace(
        config.input_activation,
        observer_or_fake_quant_ctr=FakeQuantize.with_args(observer=HistogramObserver, eps=2**-12),
    )
    quantizer.set_global(dataclasses.replace(config, input_activation=histogram, output_activation=histogram))
    return quantizer


def _xnnpack_quantizer(is_qat: bool) -> Any:
    from seemore.export.executorch_export import xnnpack_quantizer

    quantizer = xnnpack_quantizer(is_qat=is_qat)
    return _histogram_activation_ranges(quantizer) if is_qat else quantizer


_QUANTIZERS: dict[str, tuple[Callable[[bool], Any], str]] = {
    "xnnpack": (
        _xnnpack_quantizer,
        "XNNPACKQuantizer (executorch): per-channel symmetric int8 weights, static int8 activations",
    ),
    "coreml": (
        _coreml_quantizer,
        "CoreMLQuantizer (executorch/coremltools): per-channel symmetric int8 weights, uint8 activations",
    ),
    "litert": (
        _litert_quantizer,
        "litert-torch PT2EQuantizer: per-channel symmetric int8 weights, int8 activations",
    ),
}


def backend_quantizer(backend: str, is_qat: bool) -> Any:
    """The PT2E quantizer of ``backend`` (``xnnpack``, ``coreml`` or ``litert``).

    Router, top-k mask and channel LayerNorm stay in float on every backend (see
    :func:`seemore.export.executorch_export.xnnpack_quantizer` for why). Raises
    :class:`QuantizeError` naming the missing package when a backend's toolchain is
    not importable.
    """
    if backend not in _QUANTIZERS:
        raise QuantizeError(f"unknown backend {backend!r}; choose from {', '.join(QUANT_BACKENDS)}")
    factory, _ = _QUANTIZERS[backend]
    try:
        return factory(is_qat)
    except ImportError as exc:
        raise QuantizeError(f"{backend}: quantizer unavailable here ({exc.name or exc} is not importable)") from None


def quantizer_description(backend: str) -> str:
    """One-line description of ``backend``'s quantization scheme (recorded in sidecars)."""
    return _QUANTIZERS[backend][1]


# --------------------------------------------------------------------------- data


@dataclass
class TrainingData:
    """Real training images for calibration and QAT, with where they came from."""

    images: list[TrainImage]
    source: str
    folders: list[str]
    fallback: bool = False

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (recorded in results and sidecars)."""
        return {"source": self.source, "folders": self.folders, "images": len(self.images), "fallback": self.fallback}


def load_training_data(scale: int, data_root: str | Path | None = None, progress: bool = True) -> TrainingData:
    """Training images from ``<data_root>/train`` (HR, degraded with MATLAB bicubic).

    Never the benchmark sets: they are what the quantized model is evaluated on. Without a
    data root, scikit-image's bundled photos are degraded instead (with a note on stderr).
    """
    root = resolve_data_root(data_root)
    if root is not None:
        folder = root / "train"
        if not folder.is_dir():
            raise DataError(f"{root}: no train/ folder with training images (e.g. train/T91, train/BSD200)")
        subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
        images = load_training_images([folder], scale, progress=progress)
        return TrainingData(images, f"{folder} ({', '.join(subfolders) or 'images'})", [str(folder)])
    note_fallback("quantization calibration and QAT")
    images = []
    for path in bundled_images():
        hr, lr = degrade(read_rgb(path), scale)
        images.append(TrainImage(f"bundled/{path.stem}", hr, lr))
    return TrainingData(images, "scikit-image bundled photos (no data root)", [], fallback=True)


def to_tensor(img: np.ndarray) -> Tensor:
    """uint8 H x W x 3 -> float (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def ptq_calibration_images(
    data: TrainingData, count: int, min_side: int, max_side: int = 128, seed: int = 0
) -> list[Tensor]:
    """``count`` whole LR training images (centre-cropped to ``max_side``) for PTQ.

    Whole images rather than patches give the histogram observers the image-level
    statistics (flat skies next to textures) the model sees at inference. Images with a
    side below ``min_side`` are skipped; the choice is a seeded shuffle.
    """
    order = np.random.default_rng(seed).permutation(len(data.images))
    out: list[Tensor] = []
    for i in order:
        lr = data.images[int(i)].lr
        h, w = lr.shape[:2]
        if min(h, w) < min_side:
            continue
        ch, cw = min(h, max_side), min(w, max_side)
        top, left = (h - ch) // 2, (w - cw) // 2
        out.append(to_tensor(lr[top : top + ch, left : left + cw]))
        if len(out) == count:
            break
    if not out:
        raise DataError(f"no training image has both LR sides >= {min_side} pixels")
    return out


# --------------------------------------------------------------------------- settings and results


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


@dataclass
class QuantizationResult:
    """Everything one run measured and wrote."""

    model: str
    backend: str
    checkpoint: str | None
    checkpoint_sha256: str | None
    settings: QATSettings
    data: dict[str, Any]
    metrics: dict[str, dict[str, dict[str, float]]]
    timing: dict[str, float]
    training: dict[str, Any] = field(default_factory=dict)
    program: str | None = None
    sidecar: str | None = None
    evaluation_note: str = ""

    def drop_db(self, method: str, set_name: str = "Set5") -> float | None:
        """PSNR lost by ``method`` (``ptq_int8``/``qat_int8``) against FP32 on ``set_name``."""
        if method not in self.metrics or set_name not in self.metrics[method]:
            return None
        return self.metrics["fp32"][set_name]["psnr"] - self.metrics[method][set_name]["psnr"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``--json`` writes)."""
        qat_drop = self.drop_db("qat_int8")
        return {
            "model": self.model,
            "backend": self.backend,
            "quantizer": quantizer_description(self.backend),
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "settings": asdict(self.settings),
            "data": self.data,
            "evaluation": {"protocol": self.evaluation_note, "scale": self.metrics.get("scale")},
            "metrics": {k: v for k, v in self.metrics.items() if k != "scale"},
            "psnr_drop_db": {
                m: {s: self.drop_db(m, s) for s in self.metrics["fp32"]}
                for m in ("ptq_int8", "qat_int8")
                if m in self.metrics
            },
            "target": {
                "max_set5_drop_db": MAX_QAT_DROP_DB,
                "qat_set5_drop_db": qat_drop,
                "met": None if qat_drop is None else qat_drop <= MAX_QAT_DROP_DB,
            },
            "training": self.training,
            "timing_s": self.timing,
            "program": self.program,
            "sidecar": self.sidecar,
        }


# --------------------------------------------------------------------------- observers


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
            for x in tqdm(batches, total=total, desc="QAT calibration", unit="batch", file=sys.stderr,
                          disable=not progress, leave=False):
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


# --------------------------------------------------------------------------- PTQ and QAT


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
        for img in tqdm(images, desc="PTQ calibration", unit="img", file=sys.stderr, disable=not progress,
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
    bar = tqdm(range(settings.steps), desc="QAT", unit="step", file=sys.stderr, disable=not progress)
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


# --------------------------------------------------------------------------- evaluation and saving


EVALUATION_NOTE = (
    "Y-channel PSNR/SSIM (crop = scale) via seemore.evaluate.evaluate_model on each whole LR image; "
    "the quantized programs are the convert_pt2e (Q/DQ) graphs captured with dynamic height/width, "
    "so they run at every image's own size with no padding or tiling, like FP32"
)


def evaluate_program(
    model: nn.Module, scale: int, label: str, data_root: str | Path | None, sets: Sequence[str] = EVAL_SETS,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Set -> {psnr, ssim} of a float model or a converted program (standard protocol)."""
    from seemore.evaluate import evaluate_model

    if isinstance(model, torch.fx.GraphModule):
        model = evaluable(model)
    report = evaluate_model(model, tuple(sets), scale, data_root, "cpu", progress, label=label)
    return {s.name: {"psnr": round(s.psnr, 4), "ssim": round(s.ssim, 5)} for s in report.sets}


def program_bytes(converted: torch.fx.GraphModule, spec: ExportSpec) -> bytes:
    """``torch.export.save`` bytes of ``converted`` re-exported at ``spec``'s fixed input shape."""
    program = export_program(converted, spec)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def program_name(config: SeemoReConfig, spec: ExportSpec, method: str) -> str:
    """File name of a saved program, e.g. ``seemore_t_x4_xnnpack_int8_qat_180x320.pt2``."""
    return f"{config.name}_{spec.backend}_int8_{method}_{spec.height}x{spec.width}.pt2"


def save_program(
    converted: torch.fx.GraphModule,
    spec: ExportSpec,
    out_dir: str | Path,
    config: SeemoReConfig,
    checkpoint: str | Path | None,
    method: str,
    record: dict[str, Any],
) -> tuple[Path, Path]:
    """Write the fixed-shape program and its sidecar (atomically); returns both paths."""
    from seemore.export.artifact import build_sidecar, write_artifact

    payload = program_bytes(converted, spec)
    sidecar = build_sidecar(
        spec,
        config,
        checkpoint,
        {"backend": spec.backend, "note": "not lowered: a PT2E quantized torch program for the backend exporter"},
        quantization={"method": method, "quantizer": quantizer_description(spec.backend), **record},
    )
    sidecar["kind"] = PROGRAM_KIND
    path = Path(out_dir) / program_name(config, spec, method)
    side = write_artifact(path, payload, sidecar)
    return path, side


def load_program(path: str | Path) -> torch.fx.GraphModule:
    """A saved quantized program as a runnable module (fixed input shape).

    ``torchao`` is imported first: it registers the ``quantized_decomposed`` operators the
    program refers to, without which ``torch.export.load`` cannot resolve them.
    """
    import torchao  # noqa: F401  (registers quantized_decomposed ops)

    return torch.export.load(str(path)).module()


# --------------------------------------------------------------------------- driver


def _patch_batches(sampler: PatchSampler, count: int, batch_size: int, offset: int) -> Iterator[Tensor]:
    """LR patch batches for observer calibration, disjoint from the training batches' indices."""
    for i in range(count):
        yield torch.from_numpy(sampler.batch(offset + i, batch_size)[0])


def run_quantization(
    model: SeemoRe,
    settings: QATSettings,
    out_dir: str | Path = DEFAULT_OUT,
    checkpoint: str | Path | None = None,
    data_root: str | Path | None = None,
    spec: ExportSpec | None = None,
    eval_sets: Sequence[str] = EVAL_SETS,
    progress: bool = True,
    say: ProgressFn | None = None,
) -> QuantizationResult:
    """FP32 / PTQ / QAT evaluation and the saved INT8 program; see the module docstring.

    ``spec`` sets the saved program's fixed input shape (default 1x3x180x320 at the
    model's scale); its backend is ``settings.backend``.
    """
    say = say or (lambda msg: print(msg, file=sys.stderr))
    cfg = model.config
    settings.validate(cfg)
    spec = (spec or ExportSpec(scale=cfg.scale)).with_(backend=settings.backend, precision="int8", batch=1)
    spec.check_model(model)
    backend_quantizer(settings.backend, is_qat=not settings.ptq_only)  # fail early, one line
    timing: dict[str, float] = {}
    start = time.perf_counter()

    data = load_training_data(cfg.scale, data_root, progress=progress)
    deploy = DeploySeemoRe.from_reference(model).eval()
    metrics: dict[str, Any] = {"scale": cfg.scale}

    t = time.perf_counter()
    say("evaluating FP32 (reference model)")
    metrics["fp32"] = evaluate_program(model, cfg.scale, "fp32", data_root, eval_sets, progress)
    timing["eval_fp32"] = time.perf_counter() - t

    t = time.perf_counter()
    say("capturing the deploy form (dynamic batch/height/width)")
    captured = capture(deploy, spec)
    timing["capture"] = time.perf_counter() - t
    t = time.perf_counter()
    min_side = 2 * cfg.min_input_size
    ptq_images = ptq_calibration_images(data, settings.ptq_images, min_side, seed=settings.seed)
    say(f"PTQ: calibrating on {len(ptq_images)} whole LR training images")
    ptq = quantize_ptq(captured, settings.backend, ptq_images, progress)
    timing["ptq"] = time.perf_counter() - t
    t = time.perf_counter()
    metrics["ptq_int8"] = evaluate_program(ptq, cfg.scale, "ptq int8", data_root, eval_sets, progress)
    timing["eval_ptq"] = time.perf_counter() - t

    data_record = {
        **data.describe(),
        "ptq_calibration": {"images": len(ptq_images), "kind": "whole LR training images, centre crop <= 128 px"},
    }
    training: dict[str, Any] = {}
    final, method = ptq, "ptq"
    if not settings.ptq_only:
        t = time.perf_counter()
        sampler = PatchSampler(data.images, cfg.scale, settings.patch_size, seed=settings.seed)
        say(f"QAT: calibrating observers on {settings.calibration_batches} batches of training patches")
        prepared = prepare_qat(captured, settings.backend)
        # Calibration batches use sampler indices far past the training steps: unseen patches.
        seen = calibrate_qat_observers(
            prepared,
            _patch_batches(sampler, settings.calibration_batches, settings.batch_size, offset=10_000_000),
            total=settings.calibration_batches,
            progress=progress,
        )
        timing["qat_prepare_calibrate"] = time.perf_counter() - t
        t = time.perf_counter()
        training = train_qat(prepared, sampler, settings, progress)
        timing["qat_train"] = time.perf_counter() - t
        timing["qat_s_per_step"] = timing["qat_train"] / max(settings.steps, 1)
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        final, method = convert_pt2e(prepared), "qat"
        t = time.perf_counter()
        metrics["qat_int8"] = evaluate_program(final, cfg.scale, "qat int8", data_root, eval_sets, progress)
        timing["eval_qat"] = time.perf_counter() - t
        data_record["qat_calibration"] = {
            "batches": seen,
            "batch_size": settings.batch_size,
            "kind": f"LR training patches {settings.patch_size}x{settings.patch_size}",
        }
        data_record["qat_training"] = {"kind": f"LR/HR training patches, LR {settings.patch_size}px, flips/rotations"}

    t = time.perf_counter()
    sha = file_sha256(checkpoint) if checkpoint is not None else None
    result = QuantizationResult(
        model=cfg.name,
        backend=settings.backend,
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        checkpoint_sha256=sha,
        settings=settings,
        data=data_record,
        metrics=metrics,
        timing=timing,
        training=training,
        evaluation_note=EVALUATION_NOTE,
    )
    say(f"saving the {method.upper()} INT8 program at {spec.height}x{spec.width}")
    record = {
        "settings": asdict(settings),
        "data": data_record,
        "metrics": {k: v for k, v in metrics.items() if k != "scale"},
        "evaluation": EVALUATION_NOTE,
        "training": training,
    }
    path, side = save_program(final, spec, out_dir, cfg, checkpoint, method, record)
    timing["save"] = time.perf_counter() - t
    timing["total"] = time.perf_counter() - start
    result.program, result.sidecar = str(path), str(side)
    return result


def format_summary(result: QuantizationResult) -> str:
    """One-screen table: PSNR/SSIM per set for FP32, PTQ and QAT, with the drop against FP32."""
    sets = list(result.metrics["fp32"])
    header = ["model", *(f"{s} PSNR/SSIM (drop)" for s in sets)]
    rows = [header]
    for key, label in (("fp32", "FP32"), ("ptq_int8", "PTQ INT8"), ("qat_int8", "QAT INT8")):
        if key not in result.metrics:
            continue
        cells = [label]
        for s in sets:
            m = result.metrics[key][s]
            drop = result.drop_db(key, s) if key != "fp32" else None
            cells.append(f"{m['psnr']:.2f}/{m['ssim']:.4f}" + (f" ({-drop:+.2f} dB)" if drop is not None else ""))
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
