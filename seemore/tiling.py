"""Whole-image SeemoRe inference on images of any size, tile by tile, at bounded memory.

:func:`upscale_tensor` pads images smaller than the network's minimum (16 LR pixels for T/B)
and processes large ones in overlapping windows. The output is assembled in one preallocated
tensor and only one window's activations are alive at a time.

Two things make a window's output differ from the same pixels of a whole-image pass:

1. Receptive field. Every conv sees zeros beyond the window's edge. Each window therefore owns
   only its *core* and keeps ``overlap`` LR pixels (or more) of context on every interior side.
   The calibrate branch (two stride-4 depthwise convs, a 3x3 conv on that 1/16 grid, bilinear
   back up) gives every MoRE block a reach of about 3 grid cells (48 px), so the network's
   receptive field is several hundred pixels; the error it causes decays with the distance to
   the window edge (numbers below), which is what ``overlap`` buys.
2. Alignment of the calibrate grid. The stride-16 grid is anchored at the image origin and the
   bilinear resize maps pixel x to grid coordinate (x + 0.5) * floor(W / 16) / W - 0.5. Windows
   therefore start at multiples of 16 (``config.min_input_size``), so their grid cells are the
   image's cells. When W or H is not a multiple of 16 the whole-image map is slightly stretched
   (not 1/16 per pixel); a forward hook on each block's grid conv then returns the context
   already resampled with the whole-image map (the model's own resize becomes an identity).

Routing. A MoE layer routes the whole image on the global average of its input, so a window
routed on its own content can pick other experts than the whole image does.

* ``routing="global"`` reproduces whole-image routing exactly at bounded memory: for MoE layer
  L = 1..N, every window is run up to layer L's router with routers 1..L-1 pinned to the global
  decision (forward hooks return the global logits); a forward pre-hook sums the router input
  over the window's core and stops the pass; the sums over all cores divided by H*W are the
  whole image's pooled vector, and the router applied to it gives the global logits. A final
  pass with every router pinned produces the output. Cost: N partial passes plus one full pass;
  for SeemoRe-T (6 MoE layers) the partial passes add about 2.6 full passes in MACs, and the
  measured wall time was 3.6-4.2x that of ``routing="tile"`` (2 CPU threads).
* ``routing="tile"``: each window routes on its own content: one pass; results then depend on
  the tiling. Neighbouring windows may pick different experts and then differ everywhere in
  their overlap, so their outputs are cross-faded linearly across ``overlap`` LR pixels instead
  of cut, which turns a step at the seam into a ramp of ``overlap * scale`` output pixels.

With global routing, windows agree with each other (and with the whole image) in the overlap to
float32 rounding plus the receptive-field error, so each window's core is simply copied (centre
cropping): there is nothing to hide, and the result stays equal to whole-image inference
(measured max difference, random-init T x4: 3e-4 at 16 px of context, 2e-5 at 32, 8e-7 at 48).

Default: ``routing="tile"`` with ``tile=512``. Global routing's 3.6-4.2x cost on tiled images is
too much for a default whose whole cost is this compute; the large default tile makes every
image up to 512 x 512 LR pixels a single window, and a single window *is* whole-image inference
(exact routing, no extra cost). Ask for ``routing="global"`` when results must not depend on the
tiling, e.g. to compare with whole-image evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Routing = Literal["global", "tile"]
ROUTINGS: tuple[str, ...] = ("global", "tile")
DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
DEFAULT_ROUTING: Routing = "tile"
# Overlap of fixed-shape artifact tiles (LR px): every core pixel keeps at least 16 px of context
# (or a quarter of a small tile, so that windows still advance).
MAX_FIXED_OVERLAP = 16

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Span:
    """One window along one axis (LR pixels): the network sees [start, stop), owns [core_start, core_stop)."""

    start: int
    stop: int
    core_start: int
    core_stop: int


@dataclass(frozen=True)
class Window:
    """One 2-D window: a row span and a column span."""

    rows: Span
    cols: Span


def _floor_to(value: int, step: int) -> int:
    return value // step * step


def plan_axis(size: int, tile: int | None, overlap: int, align: int, exact: bool = False) -> list[Span]:
    """Split ``size`` pixels into windows of about ``tile`` pixels starting at multiples of ``align``.

    Neighbouring windows overlap by at least ``2 * overlap``; the boundary between their cores is
    the middle of the overlap, so every core pixel has ``overlap`` or more pixels of context on
    each interior side. All windows are ``tile`` wide (rounded down to a multiple of ``align``)
    except the last one, which ends at the image edge and is up to ``align - 1`` wider.

    ``exact`` is the plan of a fixed-shape artifact, which takes nothing but ``tile`` pixels:
    every window is exactly ``tile`` wide, the last one flush with the image edge (its start
    then need not be aligned), and an image no larger than ``tile`` is one window reaching past
    its edge (``stop > size``: the caller pads, see :func:`mirror_pad`).
    """
    if tile is None or size <= tile:
        return [Span(0, tile if exact and tile is not None else size, 0, size)]
    width = tile if exact else _floor_to(tile, align)
    stride = _floor_to(width - 2 * overlap, align)
    if overlap < 0 or stride < align:
        need = -(-(2 * max(overlap, 0) + align) // align) * align  # windows are multiples of align
        raise ValueError(f"tile {tile} is too small for overlap {overlap}: need tile >= {need}")
    starts = list(range(0, size - width, stride))
    last = size - width if exact else _floor_to(size - width, align)
    if starts and starts[-1] == last:
        starts.pop()
    starts.append(last)
    stops = [s + width for s in starts[:-1]] + [size]
    bounds = [0] + [(stops[i] + starts[i + 1]) // 2 for i in range(len(starts) - 1)] + [size]
    return [Span(starts[i], stops[i], bounds[i], bounds[i + 1]) for i in range(len(starts))]


def plan_tiles(
    height: int, width: int, tile: int | tuple[int, int] | None, overlap: int, align: int, exact: bool = False
) -> list[Window]:
    """All windows of an image, row-major (see :func:`plan_axis`); ``tile`` may be (rows, cols)."""
    tile_h, tile_w = tile if isinstance(tile, tuple) else (tile, tile)
    return [
        Window(r, c)
        for r in plan_axis(height, tile_h, overlap, align, exact)
        for c in plan_axis(width, tile_w, overlap, align, exact)
    ]


# --------------------------------------------------------------------------- fixed-shape artifacts


def fixed_tile_overlap(tile_h: int, tile_w: int) -> int:
    """The overlap (LR pixels) used with a fixed-shape artifact: 16, or a quarter of a small tile."""
    return min(MAX_FIXED_OVERLAP, tile_h // 4, tile_w // 4)


def mirror_pad(x: Tensor, height: int, width: int) -> Tensor:
    """Extend an NCHW tensor at the bottom/right to (height, width) by repeated mirroring.

    Unlike ``reflect`` padding this works for any pad size (a 57-pixel image padded to 320).
    """
    while x.shape[-2] < height:
        x = torch.cat([x, x.flip(-2)], dim=-2)
    while x.shape[-1] < width:
        x = torch.cat([x, x.flip(-1)], dim=-1)
    return x[..., :height, :width]


def tiling_rule(tile_h: int, tile_w: int) -> dict[str, object]:
    """The tiling rule of a fixed-shape artifact, as written into its contract for the apps.

    :func:`run_fixed_tiles` is this rule's reference implementation.
    """
    return {
        "tile": [tile_h, tile_w],
        "overlap": fixed_tile_overlap(tile_h, tile_w),
        "windows": "exactly tile-sized; starts every tile - 2*overlap pixels, the last window flush with "
        "the bottom/right edge; an image smaller than a tile is one window",
        "pad": "mirror at the bottom/right up to the tile size (repeated reflection, edge pixel included)",
        "routing": "per tile: each MoE router averages over its own tile, so tiles may choose different "
        "experts; the result depends on the tiling (parity compares artifact and torch on the same tiles)",
        "blend": "linear cross-fade across the overlap between neighbouring cores; weights sum to 1",
    }


def run_fixed_tiles(run: Callable[[Tensor], Tensor], lr: Tensor, tile_h: int, tile_w: int, scale: int) -> Tensor:
    """Super-resolve a (1, 3, h, w) image with ``run``, which only takes (1, 3, tile_h, tile_w).

    Implements :func:`tiling_rule`: mirror-pad to at least one tile, exact windows, per-tile
    routing, outputs cross-faded across the overlap. Returns (1, 3, h*scale, w*scale).
    """
    h, w = lr.shape[-2:]
    image = mirror_pad(lr, max(h, tile_h), max(w, tile_w))
    overlap = fixed_tile_overlap(tile_h, tile_w)
    windows = plan_tiles(image.shape[-2], image.shape[-1], (tile_h, tile_w), overlap, 1, exact=True)
    if len(windows) == 1:
        return run(image.contiguous())[..., : h * scale, : w * scale]
    out = torch.zeros((1, 3, image.shape[-2] * scale, image.shape[-1] * scale), dtype=torch.float32)
    for window in windows:
        r, c = window.rows, window.cols
        result = run(image[..., r.start : r.stop, c.start : c.stop].contiguous()).float()
        _place(out, result, window, scale, overlap, windows)
    return out[..., : h * scale, : w * scale]


def _pad_to_minimum(lr: Tensor, minimum: int) -> Tensor:
    """Pad bottom/right up to ``minimum`` pixels: reflection where the image is big enough
    (keeps texture statistics), replication otherwise (reflection needs pad < size)."""
    h, w = lr.shape[-2:]
    pad_h, pad_w = max(0, minimum - h), max(0, minimum - w)
    if pad_h == 0 and pad_w == 0:
        return lr
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(lr, (0, pad_w, 0, pad_h), mode=mode)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _align(model: nn.Module) -> int:
    """Cumulative stride of the calibrate branch (16 for T/B, 4 for L): windows start on its grid."""
    return int(model.config.min_input_size)


def _routers(model: nn.Module) -> list[nn.Module]:
    """Routers of the MoE layers: ``gate`` of every module that also has ``experts``. Duck-typed so
    that export rewrites of the network with the same structure (``seemore.deploy``) work too."""
    return [
        m.gate
        for m in model.modules()
        if isinstance(getattr(m, "gate", None), nn.Module) and hasattr(m, "experts")
    ]


def _context_convs(model: nn.Module) -> list[nn.Module]:
    """The grid conv (``conv``) of every block with a ``calibrate`` branch, in any implementation."""
    return [
        m.conv
        for m in model.modules()
        if callable(getattr(m, "calibrate", None)) and isinstance(getattr(m, "conv", None), nn.Module)
    ]


class _StopPass(Exception):
    """Raised from a router pre-hook to end a partial pass once the router input is summed."""


class _TiledRun:
    """Hooks and state for one tiled inference: which window is running and the routing decisions."""

    def __init__(self, model: nn.Module, height: int, width: int) -> None:
        self.model = model
        self.height, self.width = height, width
        self.align = _align(model)
        self.gates = _routers(model)
        self.context_convs = _context_convs(model)
        self.window: Window | None = None
        self.pinned: dict[nn.Module, Tensor] = {}  # router -> global logits (1, E)
        self.target: nn.Module | None = None  # router whose input is being summed in this pass
        self.total: Tensor | None = None

    # -- calibrate alignment -------------------------------------------------------------------

    def _axis_map(
        self, span: Span, size: int, cells: int, local_cells: int, align: int, device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Bilinear source indices and weights of the whole-image resize, for one window axis."""
        x = torch.arange(span.start, span.stop, dtype=torch.float64, device=device)
        scale = float(torch.tensor(cells / size, dtype=torch.float32))  # PyTorch computes it in float
        src = ((x + 0.5) * scale - 0.5).clamp(min=0.0)
        i0 = src.floor().long()
        frac = (src - i0).to(torch.float32)
        i1 = torch.where(i0 < cells - 1, i0 + 1, i0)
        offset = span.start // align
        return (i0 - offset).clamp(0, local_cells - 1), (i1 - offset).clamp(0, local_cells - 1), frac

    def _context_hook(self) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], Tensor]:
        align = self.align

        def hook(module: nn.Module, args: tuple[Tensor, ...], ctx: Tensor) -> Tensor:
            window = self.window
            assert window is not None
            rows, cols = window.rows, window.cols
            ry0, ry1, fy = self._axis_map(
                rows, self.height, self.height // align, ctx.shape[2], align, ctx.device
            )
            cx0, cx1, fx = self._axis_map(
                cols, self.width, self.width // align, ctx.shape[3], align, ctx.device
            )
            fy = fy.to(ctx.dtype)[:, None]
            fx = fx.to(ctx.dtype)
            out = ctx.index_select(2, ry0) * (1 - fy) + ctx.index_select(2, ry1) * fy
            # Full resolution now: the model's own bilinear resize to (h, w) is an identity.
            return out.index_select(3, cx0) * (1 - fx) + out.index_select(3, cx1) * fx

        return hook

    # -- routing ---------------------------------------------------------------------------------

    def _sum_hook(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        if module in self.pinned:
            return None
        if self.target is None:
            self.target = module  # the first router not decided yet: this pass decides it
        if module is not self.target:
            raise RuntimeError("routers were reached in a different order by different windows")
        window = self.window
        assert window is not None
        x = args[0]
        r, c = window.rows, window.cols
        core = x[
            :,
            :,
            r.core_start - r.start : r.core_stop - r.start,
            c.core_start - c.start : c.core_stop - c.start,
        ]
        part = core.sum(dim=(2, 3), dtype=torch.float64)
        self.total = part if self.total is None else self.total + part
        raise _StopPass

    def _pin_hook(self, module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> Tensor | None:
        logits = self.pinned.get(module)
        return (
            None if logits is None else logits.to(device=output.device, dtype=output.dtype).expand_as(output)
        )

    @contextmanager
    def hooks(self, align_context: bool, pin: bool, collect: bool) -> Iterator[None]:
        """Install the requested hooks for the duration of the block."""
        handles = []
        try:
            if align_context:
                handles += [conv.register_forward_hook(self._context_hook()) for conv in self.context_convs]
            if collect:
                handles += [g.register_forward_pre_hook(self._sum_hook) for g in self.gates]
            if pin:
                handles += [g.register_forward_hook(self._pin_hook) for g in self.gates]
            yield
        finally:
            for handle in handles:
                handle.remove()

    def finish_router(self) -> None:
        """Turn the summed router input of this pass into the router's global logits."""
        if self.target is None or self.total is None:
            raise RuntimeError("a routing pass reached no router")
        pooled = self.total / (self.height * self.width)
        weight = next(self.target.parameters())
        # The router pools first, so a 1x1 "image" of the pooled vector gives its logits.
        logits = self.target(pooled.to(weight.dtype)[:, :, None, None])
        self.pinned[self.target] = logits.detach()
        self.target, self.total = None, None


def upscale_tensor(
    model: nn.Module,
    lr: Tensor,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    routing: Routing = DEFAULT_ROUTING,
    progress: ProgressFn | None = None,
) -> Tensor:
    """Super-resolve ``lr`` (1, 3, H, W) float32 in [0, 1] with any H, W; returns (1, 3, sH, sW).

    ``tile`` is the window side in LR pixels (None: whole image in one pass), ``overlap`` the
    minimum context kept around each window's core, ``routing`` "global" (exact whole-image
    expert choice) or "tile" (each window routes itself; faster). Windows run on the model's
    device; the output is assembled on ``lr``'s device and is not clipped. ``progress(done,
    total)`` is called after every window pass.
    """
    if lr.dim() != 4 or lr.shape[0] != 1 or lr.shape[1] != 3:
        raise ValueError(f"expected a (1, 3, H, W) tensor, got {tuple(lr.shape)}")
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}")
    if tile is not None and tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    align = _align(model)
    scale = int(model.config.scale)
    height, width = lr.shape[-2:]
    image = _pad_to_minimum(lr, align)
    windows = plan_tiles(image.shape[-2], image.shape[-1], tile, overlap, align)
    device = _model_device(model)
    with torch.inference_mode():
        if len(windows) == 1:
            out = model(image.to(device)).to(lr.device)
            if progress is not None:
                progress(1, 1)
            return out[:, :, : height * scale, : width * scale]
        return _tiled(model, image, windows, scale, overlap, routing, progress, device)[
            :, :, : height * scale, : width * scale
        ]


def _tiled(
    model: nn.Module,
    image: Tensor,
    windows: list[Window],
    scale: int,
    overlap: int,
    routing: Routing,
    progress: ProgressFn | None,
    device: torch.device,
) -> Tensor:
    height, width = image.shape[-2:]
    run = _TiledRun(model, height, width)
    align = _align(model)
    misaligned = height % align != 0 or width % align != 0
    passes = len(run.gates) if routing == "global" else 0
    if routing == "global" and not run.gates:
        raise ValueError("routing='global' needs a model with MoE routers (modules with .gate and .experts)")
    total_steps = (passes + 1) * len(windows)
    step = 0

    def crop(window: Window) -> Tensor:
        r, c = window.rows, window.cols
        return image[:, :, r.start : r.stop, c.start : c.stop].to(device)

    for _ in range(passes):
        with run.hooks(align_context=misaligned, pin=True, collect=True):
            for window in windows:
                run.window = window
                try:
                    model(crop(window))
                except _StopPass:
                    pass
                else:
                    raise RuntimeError("a routing pass ran through without reaching its router")
                step += 1
                if progress is not None:
                    progress(step, total_steps)
        run.finish_router()

    out = torch.zeros((1, 3, height * scale, width * scale), dtype=image.dtype, device=image.device)
    band = 0 if routing == "global" else overlap
    with run.hooks(align_context=misaligned, pin=routing == "global", collect=False):
        for window in windows:
            run.window = window
            result = model(crop(window)).to(out.device, out.dtype)
            _place(out, result, window, scale, band, windows)
            del result
            step += 1
            if progress is not None:
                progress(step, total_steps)
    return out


def _ramp(positions: Tensor, centre: int, half: int, scale: int) -> Tensor:
    """Weight rising from 0 to 1 across [centre - half, centre + half) LR px, at HR pixel centres."""
    if half == 0:
        return (positions >= centre * scale).to(torch.float32)
    return ((positions + 0.5 - (centre - half) * scale) / (2 * half * scale)).clamp(0.0, 1.0)


def _axis_weights(
    span: Span, size: int, half: int, scale: int, device: torch.device
) -> tuple[int, int, Tensor]:
    """HR range a window contributes to along one axis, and its cross-fade weights there."""
    first = span.core_start == 0
    last = span.core_stop == size
    lo = span.core_start - (0 if first else half)
    hi = span.core_stop + (0 if last else half)
    positions = torch.arange(lo * scale, hi * scale, dtype=torch.float32, device=device)
    weight = torch.ones_like(positions)
    if not first:
        weight = weight * _ramp(positions, span.core_start, half, scale)
    if not last:
        weight = weight * (1 - _ramp(positions, span.core_stop, half, scale))
    return lo * scale, hi * scale, weight


def _place(out: Tensor, result: Tensor, window: Window, scale: int, band: int, windows: list[Window]) -> None:
    """Copy a window's core into ``out`` (band 0), or add it cross-faded across ``band`` LR px.

    The cross-fade weights of neighbouring windows sum to one (a partition of unity per axis),
    so no weight accumulator is needed.
    """
    r, c = window.rows, window.cols
    height, width = out.shape[-2] // scale, out.shape[-1] // scale
    if band == 0:
        out[:, :, r.core_start * scale : r.core_stop * scale, c.core_start * scale : c.core_stop * scale] = (
            result[
                :,
                :,
                (r.core_start - r.start) * scale : (r.core_stop - r.start) * scale,
                (c.core_start - c.start) * scale : (c.core_stop - c.start) * scale,
            ]
        )
        return
    # Keep the fade inside both windows' margins and away from the next boundary.
    cores = [w.rows.core_stop - w.rows.core_start for w in windows] + [
        w.cols.core_stop - w.cols.core_start for w in windows
    ]
    half = max(0, min(band, min(cores)) // 2)
    y0, y1, wy = _axis_weights(r, height, half, scale, out.device)
    x0, x1, wx = _axis_weights(c, width, half, scale, out.device)
    part = result[
        :, :, y0 - r.start * scale : y1 - r.start * scale, x0 - c.start * scale : x1 - c.start * scale
    ]
    out[:, :, y0:y1, x0:x1] += part * (wy[:, None] * wx[None, :]).to(out.dtype)
