"""FP16 safety of the deploy form: the largest activation of every op, against fp16's limit.

Core ML on the Neural Engine and ExecuTorch Vulkan run the deploy form in fp16, whose largest
finite value is 65504; one intermediate above it becomes ``inf`` and the output is lost. The
intermediates that matter are not only module outputs: the top-k mask's ``diff * gain``
products before their clamp, the channel LayerNorm's ``centred * centred`` and ``var + eps``,
the residual sums. :func:`check_fp16` therefore records every aten op that the forward pass
executes (a :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees each one, with
forward hooks on every module to name the module it runs in) and keeps, per op, the largest
``|value|`` over all images. It also compares the fp16 output with the fp32 output (PSNR).

By default the fp16 run is *emulated*: weights and input are rounded to fp16, every op is
computed in fp32 on those values and its output is rounded to fp16 before the next op sees
it. That stores exactly the values of an fp16 run whose ops compute in fp32 and round once
(what PyTorch's own fp16 kernels do), and it is faster on CPU than torch fp16, whose
convolutions are slow there (about half the time on the shipped x4 model at 72x72, two
threads; the maxima agreed to 0.4 %). Convolution sums may add in another order than a given
fp16 kernel; that changes a value by rounding, not its size. Partial sums inside one op
(a conv accumulator on hardware that accumulates in fp16) are not visible to either mode.
``emulate=False`` runs ``copy.deepcopy(model).half()`` on fp16 input instead.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

from seemore.common.tables import format_table
from seemore.common.tensors import image_to_tensor, psnr_db

__all__ = [
    "BUNDLED",
    "DEFAULT_SETS",
    "FP16_MAX",
    "SAFE_FRACTION",
    "SAFE_LIMIT",
    "ActivationRow",
    "Fp16Report",
    "ImageResult",
    "LrImage",
    "check_fp16",
    "format_report",
    "load_lr_images",
]

FP16_MAX = 65504.0
# The bar: every activation below a quarter of the fp16 limit, i.e. two binades of headroom
# for images brighter or busier than the ones checked.
SAFE_FRACTION = 0.25
SAFE_LIMIT = FP16_MAX * SAFE_FRACTION
BUNDLED = "bundled"
DEFAULT_SETS: tuple[str, ...] = ("Set5", "Set14", BUNDLED)
TOP_MODULE = "<model>"

# Ops that only move or copy values: their maxima are those of their inputs, and rounding
# their outputs again would be a no-op (view ops are skipped through ``OpOverload.is_view``).
_VALUE_PRESERVING = frozenset({"detach", "clone", "alias", "lift_fresh", "_to_copy", "copy_", "contiguous"})

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class LrImage:
    """One LR input of the check: ``lr`` is (1, 3, H, W) float32 in [0, 1]."""

    set_name: str
    name: str
    lr: Tensor


@dataclass(frozen=True)
class ActivationRow:
    """The largest ``|value|`` one op produced over every image checked.

    ``module`` is the innermost module the op ran in (:data:`TOP_MODULE` for the model's own
    forward), ``op`` the aten op and ``index`` its position among that module's ops of the
    same kind in one call (``mul`` #0, #1, ...). ``image`` is where the maximum occurred.
    """

    module: str
    op: str
    index: int
    max_abs: float
    image: str
    nonfinite: bool = False

    @property
    def name(self) -> str:
        """``module:op#index``, e.g. ``body.0.local_block.block.moe_layer.mask:mul#2``."""
        return f"{self.module}:{self.op}#{self.index}"

    @property
    def fraction(self) -> float:
        """``max_abs`` as a fraction of the fp16 limit (65504)."""
        return self.max_abs / FP16_MAX

    @property
    def headroom(self) -> float:
        """``65504 / max_abs`` (inf for an op that only produced zeros)."""
        return math.inf if self.max_abs == 0 else FP16_MAX / self.max_abs


@dataclass(frozen=True)
class ImageResult:
    """Per image: the fp16 output against the fp32 output."""

    set_name: str
    name: str
    height: int
    width: int
    psnr_db: float
    output_nonfinite: bool
    max_abs: float


@dataclass(frozen=True)
class Fp16Report:
    """What :func:`check_fp16` found: per-op maxima (largest first) and per-image PSNR."""

    rows: tuple[ActivationRow, ...]
    images: tuple[ImageResult, ...]
    emulated: bool
    limit: float = SAFE_LIMIT

    @property
    def worst(self) -> ActivationRow:
        """The op with the largest activation."""
        if not self.rows:
            raise ValueError("no activations were recorded")
        return self.rows[0]

    @property
    def max_abs(self) -> float:
        """Largest ``|activation|`` of the whole run."""
        return self.worst.max_abs

    @property
    def headroom(self) -> float:
        """``65504 / max_abs``: how many times larger activations could grow before fp16 overflows."""
        return self.worst.headroom

    @property
    def nonfinite(self) -> bool:
        """Whether any op or output held ``inf`` or ``nan``."""
        return any(r.nonfinite for r in self.rows) or any(i.output_nonfinite for i in self.images)

    @property
    def over_limit(self) -> list[ActivationRow]:
        """The ops whose maximum reaches :attr:`limit`."""
        return [r for r in self.rows if r.max_abs >= self.limit or r.nonfinite]

    @property
    def passes(self) -> bool:
        """Every activation below :attr:`limit` and nothing non-finite."""
        return not self.over_limit and not self.nonfinite

    def by_module(self) -> list[ActivationRow]:
        """The largest row of each module (largest first): one line per layer for the table."""
        best: dict[str, ActivationRow] = {}
        for row in self.rows:  # already largest first
            best.setdefault(row.module, row)
        return list(best.values())

    def psnr_by_set(self) -> dict[str, dict[str, float]]:
        """``{set: {"mean_db", "min_db", "images"}}`` of the fp16-vs-fp32 PSNR."""
        out: dict[str, dict[str, float]] = {}
        for set_name in dict.fromkeys(i.set_name for i in self.images):
            values = [i.psnr_db for i in self.images if i.set_name == set_name]
            out[set_name] = {"mean_db": sum(values) / len(values), "min_db": min(values), "images": len(values)}
        return out

    def summary(self) -> str:
        """One line: the worst op, its fraction of the fp16 limit, and the verdict."""
        w = self.worst
        verdict = "PASS" if self.passes else "FAIL"
        return (f"{verdict}: largest |activation| {w.max_abs:.6g} at {w.name} ({w.fraction:.1%} of the fp16 limit, "
                f"headroom {w.headroom:.2f}x; bar {self.limit:.0f} = {self.limit / FP16_MAX:.0%}), "
                f"{len(self.images)} images, {'non-finite values seen' if self.nonfinite else 'all finite'}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole report."""
        w = self.worst
        return {
            "fp16_max": FP16_MAX, "limit": self.limit, "emulated": self.emulated, "passes": self.passes,
            "nonfinite": self.nonfinite,
            "worst": {"layer": w.name, "max_abs": w.max_abs, "fraction": w.fraction, "headroom": w.headroom,
                      "image": w.image},
            "images_covered": len(self.images),
            "psnr_by_set": self.psnr_by_set(),
            "images": [vars(i) for i in self.images],
            "layers": [{"layer": r.name, "module": r.module, "op": r.op, "index": r.index, "max_abs": r.max_abs,
                        "fraction": r.fraction, "image": r.image, "nonfinite": r.nonfinite} for r in self.rows],
        }


@dataclass
class _Entry:
    max_abs: float = 0.0
    image: str = ""
    nonfinite: bool = False


@dataclass
class _Frame:
    module: str
    counts: dict[str, int] = field(default_factory=dict)


def _round_fp16(t: Tensor) -> Tensor:
    """fp32 values rounded to the nearest fp16 value (overflow to inf, as fp16 storage does)."""
    return t.to(torch.float16).to(torch.float32) if t.dtype == torch.float32 else t


def _abs_max(t: Tensor) -> tuple[float, bool]:
    """(largest finite ``|value|``, whether any value was inf/nan)."""
    if not t.numel():
        return 0.0, False
    # One pass without a temporary |t| (aminmax propagates nan, and inf shows as itself).
    low, high = torch.aminmax(t.detach())
    peak = max(-low.item(), high.item())
    if math.isfinite(peak):
        return float(peak), False
    finite = t[torch.isfinite(t)]
    return (float(finite.abs().amax().item()) if finite.numel() else 0.0), True


class _ActivationRecorder(TorchDispatchMode):
    """Records the max ``|output|`` of every floating aten op, keyed by module, op and index.

    With ``emulate`` it also rounds every fp32 output to fp16 (see the module docstring).
    The module context comes from :meth:`push` / :meth:`pop`, called by forward hooks.
    """

    def __init__(self, emulate: bool) -> None:
        super().__init__()
        self.emulate = emulate
        self.frames = [_Frame(TOP_MODULE)]
        self.entries: dict[tuple[str, str, int], _Entry] = {}
        self.image = ""

    def push(self, module: str) -> None:
        self.frames.append(_Frame(module or TOP_MODULE))

    def pop(self) -> None:
        if len(self.frames) > 1:
            self.frames.pop()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if func.is_view or name in _VALUE_PRESERVING:
            return out
        if self.emulate:
            out = tree_map_only(Tensor, _round_fp16, out)
        tensors = [t for t in (out if isinstance(out, (tuple, list)) else (out,))
                   if isinstance(t, Tensor) and t.is_floating_point()]
        if not tensors:
            return out
        frame = self.frames[-1]
        index = frame.counts.get(name, 0)
        frame.counts[name] = index + 1
        entry = self.entries.setdefault((frame.module, name, index), _Entry())
        for t in tensors:
            peak, bad = _abs_max(t)
            if peak > entry.max_abs or not entry.image:
                entry.max_abs, entry.image = max(peak, entry.max_abs), self.image
            entry.nonfinite |= bad
        return out


def _attach(model: nn.Module, recorder: _ActivationRecorder) -> list[Any]:
    """Forward (pre-)hooks on every module that tell ``recorder`` which module is running."""
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda _m, _a, n=name: recorder.push(n)))
        handles.append(module.register_forward_hook(lambda _m, _a, _o: recorder.pop()))
    return handles


def fp16_copy(model: nn.Module, emulate: bool) -> nn.Module:
    """``copy.deepcopy(model).half()``; with ``emulate`` back in fp32 (fp16-rounded weights)."""
    half = copy.deepcopy(model).half().eval()
    return half.float() if emulate else half


def check_fp16(
    model: nn.Module,
    images: Sequence[LrImage],
    *,
    emulate: bool = True,
    limit: float = SAFE_LIMIT,
    progress: ProgressFn | None = None,
) -> Fp16Report:
    """Run ``model`` in fp16 on every image, recording the largest activation of every op.

    ``model`` (fp32, e.g. a :class:`seemore.deploy.DeploySeemoRe`) is left untouched: the
    fp16 run uses a copy, and the fp32 run of ``model`` itself gives each image's reference
    output. Images run one at a time (they differ in size). ``limit`` is the bar of
    :attr:`Fp16Report.passes` (default a quarter of 65504); ``progress(done, total)`` is
    called after each image.
    """
    if not images:
        raise ValueError("no images to check")
    model = model.eval()
    half = fp16_copy(model, emulate)
    recorder = _ActivationRecorder(emulate)
    handles = _attach(half, recorder)
    results: list[ImageResult] = []
    try:
        for done, image in enumerate(images, 1):
            x = image.lr.float()
            with torch.no_grad():
                want = model(x)
                recorder.image = f"{image.set_name}/{image.name}"
                recorder.frames = recorder.frames[:1]
                x16 = _round_fp16(x) if emulate else x.half()
                with recorder:
                    got = half(x16)
            got = got.float()
            peak, bad = _abs_max(got)
            results.append(ImageResult(
                image.set_name, image.name, int(x.shape[-2]), int(x.shape[-1]),
                psnr_db(got.clamp(0, 1), want.clamp(0, 1)) if not bad else -math.inf, bad, peak,
            ))
            if progress is not None:
                progress(done, len(images))
    finally:
        for h in handles:
            h.remove()
    rows = [ActivationRow(m, op, i, e.max_abs, e.image, e.nonfinite) for (m, op, i), e in recorder.entries.items()]
    rows.sort(key=lambda r: (not r.nonfinite, -r.max_abs, r.name))
    return Fp16Report(tuple(rows), tuple(results), emulate, limit)


def load_lr_images(sets: Iterable[str], scale: int, data_root: str | Path | None = None) -> list[LrImage]:
    """The LR inputs of the named sets at ``scale``.

    A set is a benchmark set name or folder (``Set5``, ``Set14``: their ``LR_bicubic`` files,
    see :func:`seemore.benchmark.load_named_benchmark`) or :data:`BUNDLED`, scikit-image's
    sample photos whole (not the validation crop: more pixels to find large activations in),
    downscaled with the MATLAB-style bicubic. Grey images are fed as three equal channels.
    Without a data root, benchmark set names are skipped with a note and only the bundled
    photos are checked.
    """
    from seemore.benchmark import load_named_benchmark, make_lr, read_image
    from seemore.paths import bundled_images, resolve_data_root

    root = resolve_data_root(data_root)
    out: list[LrImage] = []
    for set_name in dict.fromkeys(sets):
        if set_name == BUNDLED:
            for path in bundled_images():
                out.append(LrImage(BUNDLED, path.stem, image_to_tensor(make_lr(read_image(path), scale))))
            continue
        if root is None and not Path(set_name).is_dir():
            print(f"note: no data root found; skipping {set_name} (only the bundled photos are checked)",
                  file=sys.stderr)
            continue
        shown, images = load_named_benchmark(set_name, scale, root)
        out += [LrImage(shown, im.name, image_to_tensor(im.lr)) for im in images]
    if not out:
        raise ValueError("no images to check")
    return out


def format_report(report: Fp16Report, top: int | None = 25, per_op: bool = False) -> str:
    """Terminal tables: the ``top`` largest layers (all with None), PSNR per set, the verdict.

    A layer's row is its largest op (``op`` column, e.g. the LayerNorm's ``mul#0``, its
    ``centred * centred``); ``per_op`` lists every op instead.
    """
    everything = report.rows if per_op else report.by_module()
    rows = everything if top is None else everything[:top]
    table = format_table(
        ["layer", "op", "max |activation|", "of fp16 limit", "headroom", "image"],
        [[r.module, f"{r.op}#{r.index}", "inf/nan" if r.nonfinite else f"{r.max_abs:.6g}", f"{r.fraction:.2%}",
          f"{r.headroom:.1f}x", r.image] for r in rows],
        numbers_from=2,
    )
    unit = "ops" if per_op else f"layers ({len(report.rows)} ops)"
    shown = f"largest {len(rows)} of {len(everything)} {unit}" if len(rows) < len(everything) else f"{len(rows)} {unit}"
    mode = "emulated fp16 (fp32 ops, every output rounded to fp16)" if report.emulated else "torch fp16"
    psnr = format_table(
        ["set", "images", "mean PSNR fp16 vs fp32 dB", "min dB"],
        [[s, int(v["images"]), f"{v['mean_db']:.2f}", f"{v['min_db']:.2f}"] for s, v in report.psnr_by_set().items()],
        numbers_from=1,
    )
    return f"{mode}; {shown}\n{table}\n\n{psnr}\n\n{report.summary()}"
