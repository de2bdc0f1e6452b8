"""Whole-image SeemoRe inference on images of any size, tile by tile, at bounded memory.

:func:`upscale_tensor` pads images smaller than the network's minimum (16 LR pixels for T/B)
and processes large ones in overlapping windows; only one window's activations are alive at a
time. :func:`upscale_rows` gives the same output as finished row bands, top to bottom: windows
run row span by row span, and once a span's windows are placed, the output rows that no later
span writes to are handed out; only the rows still being cross-faded stay in a rolling buffer.
Memory is then bounded by the tile size and the output width, whatever the image height: about
12 bytes x (tile x scale + fade rows) x output width for the buffer, plus one window's
activations, plus the input (:class:`LRSource` keeps it as decoded 8/16-bit samples and makes
float32 windows one at a time).

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
from typing import Literal, Protocol

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
        _place(out, result, window, scale, _fade_half(overlap, windows), image.shape[-2], image.shape[-1])
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


class LRSource(Protocol):
    """A low-resolution image that the tiler reads one window at a time.

    :class:`seemore.imageio.Picture` is one: it keeps the decoded 8/16-bit samples and converts
    only the window asked for to float32, so no float copy of the whole input is ever made.
    """

    @property
    def height(self) -> int:
        """Rows."""
        ...

    @property
    def width(self) -> int:
        """Columns."""
        ...

    def crop_tensor(self, top: int, bottom: int, left: int, right: int) -> Tensor:
        """Rows [top, bottom) and columns [left, right) as (1, 3, h, w) float32 in [0, 1]."""
        ...


class _TensorSource:
    """A (1, 3, H, W) tensor as an :class:`LRSource`: windows are views of it, as they always were."""

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor

    @property
    def height(self) -> int:
        """Rows."""
        return int(self.tensor.shape[-2])

    @property
    def width(self) -> int:
        """Columns."""
        return int(self.tensor.shape[-1])

    def crop_tensor(self, top: int, bottom: int, left: int, right: int) -> Tensor:
        """A view of the window (no copy)."""
        return self.tensor[:, :, top:bottom, left:right]


def _as_source(lr: Tensor | LRSource, align: int) -> tuple[LRSource, torch.device, torch.dtype]:
    """The (padded) image the windows are cut from, and the device/dtype the output is assembled in."""
    if isinstance(lr, Tensor):
        if lr.dim() != 4 or lr.shape[0] != 1 or lr.shape[1] != 3:
            raise ValueError(f"expected a (1, 3, H, W) tensor, got {tuple(lr.shape)}")
        return _TensorSource(_pad_to_minimum(lr, align)), lr.device, lr.dtype
    if lr.height < 1 or lr.width < 1:
        raise ValueError(f"expected a non-empty image, got {lr.height}x{lr.width}")
    if lr.height < align or lr.width < align:
        # Smaller than one grid cell: tiny, so a whole float copy costs nothing.
        whole = lr.crop_tensor(0, lr.height, 0, lr.width)
        return _TensorSource(_pad_to_minimum(whole, align)), whole.device, whole.dtype
    return lr, torch.device("cpu"), torch.float32


class RowStream:
    """The output of :func:`upscale_tensor` as finished HR row bands, top to bottom.

    Made by :func:`upscale_rows`. Iterating runs the network: every band is a (1, 3, rows, W*s)
    tensor; the bands' rows add up to ``height``. Windows run row span by row span (row-major);
    once all windows of a span are placed, the rows that no later span writes to are final and
    are yielded, and only the rest stays in a rolling buffer. A band is a view of that buffer,
    never written again; memory stays bounded when the consumer lets go of each band before
    asking for the next (the buffer under it is freed then).

    ``max_buffer_rows`` is the tallest buffer held during the last iteration (HR rows); it never
    exceeds ``buffer_bound``, one window's height times the scale, whatever the image height.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: Tensor | LRSource,
        tile: int | None,
        overlap: int,
        routing: Routing,
        progress: ProgressFn | None,
    ) -> None:
        if routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}")
        if tile is not None and tile <= 0:
            raise ValueError(f"tile must be positive, got {tile}")
        self.model = model
        self.align = _align(model)
        self.scale = int(model.config.scale)
        self._source, self._out_device, self._out_dtype = _as_source(lr, self.align)  # checks lr
        lr_height, lr_width = (lr.shape[-2], lr.shape[-1]) if isinstance(lr, Tensor) else (lr.height, lr.width)
        self.height, self.width = int(lr_height) * self.scale, int(lr_width) * self.scale
        self.windows = plan_tiles(self._source.height, self._source.width, tile, overlap, self.align)
        self.overlap, self.routing, self.progress = overlap, routing, progress
        self.max_buffer_rows = 0
        if len(self.windows) > 1 and routing == "global" and not _routers(model):
            raise ValueError(
                "routing='global' needs a model with MoE routers (modules with .gate and .experts)"
            )

    @property
    def buffer_bound(self) -> int:
        """The most HR rows the rolling buffer can hold for this plan: the tallest window, scaled.

        A span's windows write HR rows [core_start - half, core_stop + half) * scale, inside the
        window itself because every core keeps ``overlap >= half`` rows of context.
        """
        return max(w.rows.stop - w.rows.start for w in self.windows) * self.scale

    def __iter__(self) -> Iterator[Tensor]:
        return self._bands()

    def _crop(self, rows: Tensor, top: int) -> Tensor | None:
        """The part of buffer rows starting at HR row ``top`` that lies inside the output (padding off)."""
        keep = min(rows.shape[2], self.height - top)
        return rows[:, :, :keep, : self.width] if keep > 0 else None

    def _step(self, step: int, total: int) -> None:
        if self.progress is not None:
            self.progress(step, total)

    def _bands(self) -> Iterator[Tensor]:
        self.max_buffer_rows = 0
        source, device = self._source, _model_device(self.model)
        if len(self.windows) == 1:
            with torch.inference_mode():
                out = self.model(source.crop_tensor(0, source.height, 0, source.width).to(device))
                out = out.to(self._out_device)
            self._step(1, 1)
            self.max_buffer_rows = int(out.shape[2])
            band = self._crop(out, 0)
            if band is not None:
                yield band
            return
        yield from self._tiled(source, device)

    def _tiled(self, source: LRSource, device: torch.device) -> Iterator[Tensor]:
        model, windows, scale = self.model, self.windows, self.scale
        height, width = source.height, source.width
        run = _TiledRun(model, height, width)
        misaligned = height % self.align != 0 or width % self.align != 0
        passes = len(run.gates) if self.routing == "global" else 0
        total_steps = (passes + 1) * len(windows)
        step = 0

        def crop(window: Window) -> Tensor:
            r, c = window.rows, window.cols
            return source.crop_tensor(r.start, r.stop, c.start, c.stop).to(device)

        # Global routing: the partial passes only collect router inputs; they need no output.
        for _ in range(passes):
            with torch.inference_mode():
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
                        self._step(step, total_steps)
                run.finish_router()

        half = None if self.routing == "global" else _fade_half(self.overlap, windows)
        spans = _row_spans(windows)
        buffer: Tensor | None = None
        buffer_top = 0  # HR row of buffer[0]
        top = 0  # every HR row above this one has been yielded
        for index, (rows, group) in enumerate(spans):
            lo, hi = _reach(rows, height, half)
            if buffer is not None and lo * scale != top:
                raise RuntimeError("row spans do not continue where the previous one was finished")
            # Inference mode and hooks only while computing: the consumer runs between two bands.
            with torch.inference_mode(), run.hooks(
                align_context=misaligned, pin=self.routing == "global", collect=False
            ):
                # The previous span's rows still being faded (its partial sums) move to a new
                # buffer; the old one is let go first, so that two never exist at once.
                carried = None if buffer is None else buffer[:, :, top - buffer_top :].clone()
                buffer = None
                buffer = torch.zeros(
                    (1, 3, (hi - lo) * scale, width * scale), dtype=self._out_dtype, device=self._out_device
                )
                if carried is not None:
                    buffer[:, :, : carried.shape[2]] = carried
                    del carried
                buffer_top = lo * scale
                for window in group:
                    run.window = window
                    result = model(crop(window)).to(self._out_device, self._out_dtype)
                    _place(buffer, result, window, scale, half, height, width, row0=buffer_top)
                    del result
                    step += 1
                    self._step(step, total_steps)
            self.max_buffer_rows = max(self.max_buffer_rows, int(buffer.shape[2]))
            last = index == len(spans) - 1
            # Rows above where the next span's contribution starts are final.
            finished = hi * scale if last else (rows.core_stop - (half or 0)) * scale
            band = self._crop(buffer[:, :, : finished - buffer_top], buffer_top)
            top = finished
            if band is not None:
                yield band
                del band  # how long a band (and the buffer under it) lives is the consumer's choice


def upscale_rows(
    model: nn.Module,
    lr: Tensor | LRSource,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    routing: Routing = DEFAULT_ROUTING,
    progress: ProgressFn | None = None,
) -> RowStream:
    """Super-resolve ``lr`` band by band: iterate the result for (1, 3, rows, sW) HR row bands.

    Same arguments and same pixels as :func:`upscale_tensor` (bit for bit), but the output is
    never held whole: memory is one window's activations plus a rolling buffer of at most
    ``buffer_bound`` rows of the output width (12 bytes per pixel), whatever the image height.
    ``lr`` may also be an :class:`LRSource` (a :class:`seemore.imageio.Picture`), whose windows
    are converted to float32 one at a time. Bad arguments raise here, before any compute.
    """
    return RowStream(model, lr, tile, overlap, routing, progress)


def upscale_tensor(
    model: nn.Module,
    lr: Tensor | LRSource,
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
    total)`` is called after every window pass. This is :func:`upscale_rows` gathered into one
    tensor; use that to stream large outputs.
    """
    stream = upscale_rows(model, lr, tile, overlap, routing, progress)
    with torch.inference_mode():
        out: Tensor | None = None
        row = 0
        for band in stream:
            if out is None:
                if band.shape[2] == stream.height:
                    return band  # one window: its output, as it always was
                out = torch.empty((1, 3, stream.height, stream.width), dtype=band.dtype, device=band.device)
            out[:, :, row : row + band.shape[2]] = band
            row += band.shape[2]
            del band  # frees the tiler's buffer under it while the next span runs
        if out is None or row != stream.height:
            raise RuntimeError(f"the row bands cover {row} of {stream.height} rows")
        return out


def _row_spans(windows: list[Window]) -> list[tuple[Span, list[Window]]]:
    """Windows grouped by row span, in plan (row-major) order."""
    spans: list[tuple[Span, list[Window]]] = []
    for window in windows:
        if spans and spans[-1][0] == window.rows:
            spans[-1][1].append(window)
        else:
            spans.append((window.rows, [window]))
    return spans


def _fade_half(band: int, windows: list[Window]) -> int | None:
    """Half-width (LR px) of the cross-fade for ``band`` LR px, or None for copied cores (band 0).

    Keeps the fade inside both windows' margins and away from the next boundary.
    """
    if band == 0:
        return None
    cores = [w.rows.core_stop - w.rows.core_start for w in windows] + [
        w.cols.core_stop - w.cols.core_start for w in windows
    ]
    return max(0, min(band, min(cores)) // 2)


def _reach(span: Span, size: int, half: int | None) -> tuple[int, int]:
    """LR range [lo, hi) a window writes along one axis: its core, widened by the fade inside."""
    if half is None:
        return span.core_start, span.core_stop
    lo = span.core_start - (0 if span.core_start == 0 else half)
    hi = span.core_stop + (0 if span.core_stop == size else half)
    return lo, hi


def _ramp(positions: Tensor, centre: int, half: int, scale: int) -> Tensor:
    """Weight rising from 0 to 1 across [centre - half, centre + half) LR px, at HR pixel centres."""
    if half == 0:
        return (positions >= centre * scale).to(torch.float32)
    return ((positions + 0.5 - (centre - half) * scale) / (2 * half * scale)).clamp(0.0, 1.0)


def _axis_weights(
    span: Span, size: int, half: int, scale: int, device: torch.device
) -> tuple[int, int, Tensor]:
    """HR range a window contributes to along one axis, and its cross-fade weights there."""
    lo, hi = _reach(span, size, half)
    positions = torch.arange(lo * scale, hi * scale, dtype=torch.float32, device=device)
    weight = torch.ones_like(positions)
    if span.core_start != 0:
        weight = weight * _ramp(positions, span.core_start, half, scale)
    if span.core_stop != size:
        weight = weight * (1 - _ramp(positions, span.core_stop, half, scale))
    return lo * scale, hi * scale, weight


def _place(
    out: Tensor,
    result: Tensor,
    window: Window,
    scale: int,
    half: int | None,
    height: int,
    width: int,
    row0: int = 0,
) -> None:
    """Copy a window's core into ``out`` (``half`` None), or add it cross-faded across 2 * half LR px.

    ``out`` holds HR rows from ``row0`` on (a rolling buffer) of an image of ``height`` x
    ``width`` LR pixels. The cross-fade weights of neighbouring windows sum to one (a partition
    of unity per axis), so no weight accumulator is needed.
    """
    r, c = window.rows, window.cols
    if half is None:
        rows = slice(r.core_start * scale - row0, r.core_stop * scale - row0)
        out[:, :, rows, c.core_start * scale : c.core_stop * scale] = result[
            :,
            :,
            (r.core_start - r.start) * scale : (r.core_stop - r.start) * scale,
            (c.core_start - c.start) * scale : (c.core_stop - c.start) * scale,
        ]
        return
    y0, y1, wy = _axis_weights(r, height, half, scale, out.device)
    x0, x1, wx = _axis_weights(c, width, half, scale, out.device)
    part = result[
        :, :, y0 - r.start * scale : y1 - r.start * scale, x0 - c.start * scale : x1 - c.start * scale
    ]
    out[:, :, y0 - row0 : y1 - row0, x0:x1] += part * (wy[:, None] * wx[None, :]).to(out.dtype)
