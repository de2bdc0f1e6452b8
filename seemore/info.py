"""Parameter and MAC report for every SeemoRe variant and scale.

Two MAC numbers are given, both fvcore-style (:mod:`seemore.flops`; one multiply-add = one MAC):

* **dense**: every expert of every MoE layer runs, as in our reference model and every graph we export
  (routing is applied as top-k-masked weights, see :mod:`seemore.model`);
* **paper**: only the top-1 expert selected in each MoE layer runs, as in the official eval code the paper's
  numbers were measured on. This cost depends on which experts the routing picks, i.e. on the weights and
  the image. The paper's table is reproduced exactly (to 0.01 G, all nine models) by the shared part of
  the network plus experts whose ranks sum, over the MoE layers, to :data:`PAPER_EXPERT_RANK_SUM`: the
  routing of the authors' checkpoints on their measurement input, recovered from the table itself. Neither
  dense routing nor any single expert everywhere fits all nine rows, nor does any variation of the op
  conventions (no bilinear or pooling cost, norms counted), so that routing is kept as data and assumed to
  hold at other image sizes.

For a real model and image, :func:`routed_macs` counts the experts the routing actually selects.

``python -m seemore.info [--size HxW] [--json PATH]`` prints the table (and writes it as JSON). By
default every scale produces the paper's HR output, 1280 wide by 720 high (LR input floor(HR / scale));
``--size HxW`` is instead the LR input at every scale, height first as in every seemore-mobile tool,
and the HR output is LR x scale.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from seemore.common.progress import progress as progress_bar

from seemore import cli
from seemore.checkpoint import atomic_write, create_model
from seemore.config import SUPPORTED_SCALES, get_config, list_variants
from seemore.flops import MacCount, profile_macs
from seemore.model import MoELayer, SeemoRe

DEFAULT_HR_SIZE: tuple[int, int] = (1280, 720)  # (width, height) of the HR output, as in the paper
PROG = "seemore-info"

# Sum over the MoE layers of the rank of the expert each one selected when the paper's MACs were measured
# (ranks 2/4/8; T has 6 layers, B 8, L 16). Recovered from the paper's GMACs: only these sums put the
# fvcore count within 0.005 G of the published value; see the module docstring.
PAPER_EXPERT_RANK_SUM: dict[tuple[str, int], int] = {
    ("seemore_t", 2): 22,
    ("seemore_t", 3): 26,
    ("seemore_t", 4): 40,
    ("seemore_b", 2): 32,
    ("seemore_b", 3): 46,
    ("seemore_b", 4): 52,
    ("seemore_l", 2): 88,
    ("seemore_l", 3): 58,
    ("seemore_l", 4): 60,
}


@dataclass(frozen=True)
class MoECost:
    """A dense MAC count split into the shared part and each expert of each MoE layer."""

    dense: int
    experts: tuple[tuple[int, ...], ...]  # [moe layer][expert] MACs
    ranks: tuple[int, ...]  # rank of each expert (the same in every layer)

    @property
    def shared(self) -> int:
        """MACs outside the experts (run whatever the routing picks)."""
        return self.dense - sum(map(sum, self.experts))

    @property
    def per_rank(self) -> float:
        """MACs of one rank unit of one expert (an expert's cost is linear in its rank)."""
        return self.experts[0][-1] / self.ranks[-1] if self.experts else 0.0

    def top1(self, choice: Sequence[int]) -> int:
        """MACs when MoE layer ``l`` runs only expert ``choice[l]`` (the official eval path)."""
        if len(choice) != len(self.experts):
            raise ValueError(f"need one expert per MoE layer ({len(self.experts)}), got {len(choice)}")
        return self.shared + sum(layer[e] for layer, e in zip(self.experts, choice))

    def with_rank_sum(self, rank_sum: int) -> int:
        """MACs of a top-1 routing whose selected ranks add up to ``rank_sum`` over the layers."""
        return self.shared + round(rank_sum * self.per_rank)


def moe_cost(model: SeemoRe, count: MacCount) -> MoECost:
    """Split ``count`` (from :func:`seemore.flops.profile_macs` on ``model``) by MoE expert."""
    experts = []
    for name, module in model.named_modules():
        if isinstance(module, MoELayer):
            experts.append(tuple(count.module(f"{name}.experts.{i}") for i in range(len(module.experts))))
    return MoECost(count.total, tuple(experts), tuple(model.config.expert_ranks))


@dataclass(frozen=True)
class RoutedCost:
    """MACs of one forward pass that runs only the experts the routing selected."""

    macs: int
    dense: int
    selected: tuple[tuple[int, ...], ...]  # [image][moe layer] index of the top-1 expert


def routed_macs(model: SeemoRe, image: Tensor) -> RoutedCost:
    """Run ``model`` on ``image`` (N, 3, H, W) and count MACs as the official eval path would.

    Every image pays for the shared layers and, in each MoE layer, only for its top-k experts.
    """
    logits: list[Tensor] = []
    # Capture the router logits rather than re-running the router, so nothing is counted twice.
    hooks = [
        m.gate.register_forward_hook(lambda mod, args, out: logits.append(out.detach()))
        for m in model.modules()
        if isinstance(m, MoELayer)
    ]
    try:
        count = profile_macs(model, image)
    finally:
        for hook in hooks:
            hook.remove()
    cost = moe_cost(model, count)
    batch = image.shape[0]
    # Softmax is monotonic, so the top-k of the logits is the top-k of the routing probabilities.
    chosen = [torch.topk(layer_logits, model.config.topk, dim=1).indices for layer_logits in logits]
    macs = float(cost.shared)
    selected = []
    for b in range(batch):
        # An expert's count covers the whole batch; each image pays its share.
        macs += sum(cost.experts[l][int(e)] / batch for l, idx in enumerate(chosen) for e in idx[b])
        selected.append(tuple(int(idx[b, 0]) for idx in chosen))
    return RoutedCost(round(macs), cost.dense, tuple(selected))


@dataclass(frozen=True)
class CostRow:
    """Size and cost of one model at one output size."""

    name: str
    variant: str
    scale: int
    hr_size: tuple[int, int]  # (width, height)
    lr_size: tuple[int, int]  # (width, height) = floor(hr / scale)
    params: int
    macs_paper: int  # top-1 experts with the paper's routing (PAPER_EXPERT_RANK_SUM)
    macs_dense: int  # all experts run (our reference model and exported graphs)
    macs_top1_min: int  # top-1, every layer picks the rank-2 expert
    macs_top1_max: int  # top-1, every layer picks the rank-8 expert
    paper_expert_rank_sum: int

    @property
    def dense_overhead(self) -> float:
        """Extra MACs of dense routing relative to the paper's count."""
        return self.macs_dense / self.macs_paper - 1.0


def lr_size(hr_size: tuple[int, int], scale: int) -> tuple[int, int]:
    """LR input (width, height) for an HR output: floor division, as 1280x720 / 3 -> 426x240."""
    return hr_size[0] // scale, hr_size[1] // scale


def min_hr_size(variant: str, scale: int) -> int:
    """Smallest HR side for which ``variant`` at ``scale`` gets a usable LR input."""
    return get_config(variant, scale).min_input_size * scale


def check_size(hr_size: tuple[int, int], variant: str, scale: int) -> None:
    """Raise ValueError (one line) if the LR input for ``hr_size`` is too small for the model."""
    need = get_config(variant, scale).min_input_size
    w, h = lr_size(hr_size, scale)
    if min(w, h) < need:
        side = min_hr_size(variant, scale)
        raise ValueError(
            f"size {hr_size[0]}x{hr_size[1]} is too small: {variant}_x{scale} would get a {w}x{h} input but "
            f"needs at least {need}x{need} (an output of at least {side}x{side})"
        )


@functools.lru_cache(maxsize=64)
def cost_row(variant: str, scale: int, hr_size: tuple[int, int] = DEFAULT_HR_SIZE) -> CostRow:
    """Parameters and MACs of ``variant`` at ``scale`` producing an ``hr_size`` (width, height) output."""
    check_size(hr_size, variant, scale)
    # Built on the meta device: only shapes matter, so there is no weight initialisation to pay for.
    with torch.device("meta"):
        model = create_model(variant, scale)
    w, h = lr_size(hr_size, scale)
    cost = moe_cost(model, profile_macs(model, (1, 3, h, w)))
    rank_sum = PAPER_EXPERT_RANK_SUM[(model.config.variant, scale)]
    n_layers = len(cost.experts)
    return CostRow(
        name=model.config.name,
        variant=model.config.variant,
        scale=scale,
        hr_size=hr_size,
        lr_size=(w, h),
        params=sum(p.numel() for p in model.parameters()),
        macs_paper=cost.with_rank_sum(rank_sum),
        macs_dense=cost.dense,
        macs_top1_min=cost.top1([0] * n_layers),
        macs_top1_max=cost.top1([len(cost.ranks) - 1] * n_layers),
        paper_expert_rank_sum=rank_sum,
    )


def hr_size_for_lr(lr_input: tuple[int, int], scale: int) -> tuple[int, int]:
    """HR output (width, height) for an LR input given as (height, width), as ``--size`` gives it."""
    return lr_input[1] * scale, lr_input[0] * scale


def check_lr_input(lr_input: tuple[int, int], variant: str, scale: int) -> None:
    """Raise ValueError (one line) if an LR input of (height, width) ``lr_input`` is too small for the model."""
    need = get_config(variant, scale).min_input_size
    if min(lr_input) < need:
        raise ValueError(
            f"LR input {lr_input[0]}x{lr_input[1]} (HxW) is too small: {variant}_x{scale} needs at least "
            f"{need}x{need}"
        )


def _table_jobs() -> list[tuple[str, int]]:
    # Smallest architecture first (T, B, L), rather than alphabetical.
    variants = sorted(list_variants(), key=lambda v: (get_config(v).num_layers, get_config(v).embedding_dim))
    return [(v, s) for v in variants for s in SUPPORTED_SCALES]


def check_table_size(
    hr_size: tuple[int, int] = DEFAULT_HR_SIZE, *, lr_input: tuple[int, int] | None = None
) -> None:
    """Raise ValueError (one line) if any row of :func:`cost_table` would get a too small LR input.

    The message names the model with the largest size requirement, so one fix makes the whole table work.
    """
    jobs = _table_jobs()
    if lr_input is None:
        for v, s in sorted(jobs, key=lambda job: -min_hr_size(*job)):
            check_size(hr_size, v, s)
    else:
        for v, s in sorted(jobs, key=lambda job: -get_config(*job).min_input_size):
            check_lr_input(lr_input, v, s)


def cost_table(
    hr_size: tuple[int, int] = DEFAULT_HR_SIZE,
    progress: bool = False,
    *,
    lr_input: tuple[int, int] | None = None,
) -> list[CostRow]:
    """:func:`cost_row` for every registered variant at every scale (about half a second each).

    By default every scale produces the same ``hr_size`` (width, height) output, as in the paper's table,
    from an LR input of floor(``hr_size`` / scale). With ``lr_input`` (height, width, as ``--size``
    gives it) every scale gets that LR input instead and produces LR x scale; ``hr_size`` is then unused.
    """
    jobs = _table_jobs()
    # Fail before any counting.
    check_table_size(hr_size, lr_input=lr_input)
    bar = progress_bar(jobs, desc="counting", enabled=progress, leave=False)
    return [cost_row(v, s, hr_size if lr_input is None else hr_size_for_lr(lr_input, s)) for v, s in bar]


def _hw(size: tuple[int, int]) -> str:
    """A (width, height) pair as the project's ``HxW`` text."""
    return f"{size[1]}x{size[0]}"


def size_note(rows: Sequence[CostRow]) -> str:
    """Which size ``rows`` were counted at: one HR output for every scale, or one LR input."""
    hr_sizes = {r.hr_size for r in rows}
    lr_sizes = {r.lr_size for r in rows}
    if len(hr_sizes) == 1:
        hr = next(iter(hr_sizes))
        return f"HR output {_hw(hr)} (HxW) at every scale, LR input floor(HR / scale)"
    if len(lr_sizes) == 1:
        return f"LR input {_hw(next(iter(lr_sizes)))} (HxW) at every scale, HR output LR x scale"
    return "the LR input and HR output of each row"


def format_table(rows: Sequence[CostRow]) -> str:
    """Plain-text table of ``rows`` for the terminal."""
    header = ("model", "LR input", "HR output", "params", "GMACs paper", "GMACs dense", "dense extra",
              "top-1 range")
    lines = [
        (
            r.name,
            _hw(r.lr_size),
            _hw(r.hr_size),
            f"{r.params:,}",
            f"{r.macs_paper / 1e9:.2f}",
            f"{r.macs_dense / 1e9:.2f}",
            f"+{100 * r.dense_overhead:.1f}%",
            f"{r.macs_top1_min / 1e9:.2f}-{r.macs_top1_max / 1e9:.2f}",
        )
        for r in rows
    ]
    widths = [max(len(c) for c in col) for col in zip(header, *lines)]

    def fmt(cells: Sequence[str]) -> str:
        # Names left-aligned, numbers right-aligned.
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join(
        [
            f"SeemoRe cost, {size_note(rows)} (fvcore-style MACs: 1 multiply-add = 1 MAC)",
            fmt(header),
            fmt(tuple("-" * w for w in widths)),
            *map(fmt, lines),
            "paper: top-1 experts with the routing behind the paper's table (official eval path);",
            "dense: all 3 experts run, as in our reference model and exported graphs;",
            "top-1 range: every MoE layer picking the rank-2 .. rank-8 expert.",
        ]
    )


def rows_to_json(rows: Sequence[CostRow]) -> str:
    """JSON document of ``rows`` (MACs as integers, plus GMACs rounded to 0.01 for reading)."""
    items = []
    for r in rows:
        item = asdict(r)
        item["gmacs_paper"] = round(r.macs_paper / 1e9, 2)
        item["gmacs_dense"] = round(r.macs_dense / 1e9, 2)
        items.append(item)
    hr_sizes = {r.hr_size for r in rows} or {DEFAULT_HR_SIZE}
    lr_sizes = {r.lr_size for r in rows}
    doc = {
        "convention": "fvcore-style MACs (one multiply-add = one MAC); see seemore/flops.py",
        "size_order": "[width, height]",  # of hr_size / lr_size here and in every model
        # The size shared by every row, or null when it differs by scale.
        "hr_size": list(next(iter(hr_sizes))) if len(hr_sizes) == 1 else None,
        "lr_size": list(next(iter(lr_sizes))) if len(lr_sizes) == 1 else None,
        "models": items,
    }
    return json.dumps(doc, indent=2) + "\n"


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The ``seemore-info`` argument parser."""
    p = cli.make_parser(
        PROG,
        "Parameters and MACs (fvcore-style) of every SeemoRe variant at x2/x3/x4.\n"
        "'paper' counts only the selected top-1 expert per MoE layer (the official eval path, reproducing\n"
        "the paper); 'dense' counts all experts, which is what our reference model and exported graphs\n"
        "compute.",
    )
    cli.add_size(
        p,
        default=None,
        what="; every variant and scale gets this input and outputs LR x scale. Default: the paper's HR "
        "output 720x1280 (1280 wide) at every scale, from an LR input of floor(HR / scale): 360x640, "
        "240x426, 180x320 at x2, x3, x4",
    )
    cli.add_json(p)
    cli.add_progress(p)
    return p


def _run(args: argparse.Namespace) -> int:
    cli.check_json_path(args.json)
    try:  # a too small --size is a usage error, reported before any counting
        check_table_size(lr_input=args.size)
    except ValueError as exc:
        raise cli.UsageError(f"--size: {exc}") from None
    rows = cost_table(progress=not args.no_progress, lr_input=args.size)
    print(format_table(rows))
    if args.json is not None:
        text = rows_to_json(rows)
        try:
            atomic_write(args.json, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        except OSError as err:
            return cli.fail(PROG, f"cannot write {args.json}: {err.strerror or err}", 1)
        print(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: print the cost table, optionally write it as JSON; returns the exit status."""
    args = build_parser().parse_args(argv)
    return cli.run_main(PROG, lambda: _run(args))


if __name__ == "__main__":
    raise SystemExit(main())
