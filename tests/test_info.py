"""Tests of the MAC counter (seemore.flops) and the cost report (seemore.info)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seemore import create_model, get_config
from seemore.flops import count_macs, macs_by_node, profile_macs
from seemore.info import cost_table, main, moe_cost, routed_macs

# docs/MODEL.md (parameters and MACs) (HR output 1280x720).
PAPER_PARAMS = {
    "seemore_t": (220_104, 224_979, 231_804),
    "seemore_b": (490_364, 496_859, 505_952),
    "seemore_l": (953_308, 959_803, 968_896),
}
PAPER_GMACS = {
    "seemore_t": (44.58, 20.32, 11.93),
    "seemore_b": (101.14, 45.75, 26.35),
    "seemore_l": (197.38, 87.81, 50.01),
}


@pytest.fixture(scope="module")
def table():
    """The default cost table (cached inside seemore.info, so the CLI tests reuse it)."""
    rows = cost_table()
    assert len(rows) == 9
    return {(r.variant, r.scale): r for r in rows}


def test_params_match_paper(table):
    for (variant, scale), row in table.items():
        assert row.params == PAPER_PARAMS[variant][scale - 2], row.name


def test_paper_gmacs_match_table(table):
    for (variant, scale), row in table.items():
        assert round(row.macs_paper / 1e9, 2) == PAPER_GMACS[variant][scale - 2], row.name
        # The published routing is one of the possible top-1 routings, and dense costs more than any.
        assert row.macs_top1_min <= row.macs_paper <= row.macs_top1_max < row.macs_dense


def _dense_formula(variant: str, scale: int, w: int, h: int) -> int:
    """Dense MACs of SeemoRe written out by hand from the architecture (docs/MODEL.md), fvcore conventions."""
    cfg = get_config(variant, scale)
    c, p = cfg.embedding_dim, w * h
    lw, lh, agg = w, h, 0
    for _ in range(cfg.recursive):  # depthwise 4x4 stride 4: 16 MACs per channel per output pixel
        lw, lh = lw // 4, lh // 4
        agg += 16 * c * lw * lh
    rme_block = (
        9 * c * c * p + 2 * c * c * p  # conv_1: 3x3 then 1x1 to 2C
        + 6 * c * p  # conv_2: depthwise 1x3 + 3x1
        + agg + 9 * c * lw * lh + c * c * lw * lh  # calibrate: aggregation, dw 3x3, 1x1
        + 4 * c * p  # bilinear resize back: 4 per output element
        + c * p + c * cfg.num_experts  # router: adaptive average pool + linear
        + sum(3 * c * r * p for r in cfg.expert_ranks)  # every expert (dense routing)
        + c * c * p  # proj
    )
    ffn = 2 * c * c * p + 9 * c * p + c * c * p
    sme_block = 2 * c * c * p + 2 * 11 * c * p + c * c * p
    head_tail = 27 * c * p + 9 * c * c * p + 9 * c * 3 * scale * scale * p
    return head_tail + cfg.num_layers * (rme_block + sme_block + 2 * ffn)


def test_dense_count_matches_hand_formula(table):
    for (variant, scale), row in table.items():
        assert row.macs_dense == _dense_formula(variant, scale, *row.lr_size), row.name


def test_counter_conventions():
    x = torch.empty(2, 8, 10, 12, device="meta")

    def count(fn) -> int:
        class Wrap(nn.Module):
            def forward(self, t):
                return fn(t)

        return count_macs(Wrap(), x)

    w_grouped = torch.empty(16, 2, 3, 3, device="meta")
    assert count(lambda t: F.conv2d(t, w_grouped, stride=2, padding=1, groups=4)) == 2 * 16 * 2 * 9 * 5 * 6
    assert count(lambda t: F.linear(t, torch.empty(5, 12, device="meta"))) == 2 * 8 * 10 * 12 * 5
    assert count(lambda t: t @ torch.empty(12, 3, device="meta")) == 2 * 8 * 10 * 12 * 3
    up = F.interpolate
    assert count(lambda t: up(t, size=(20, 24), mode="bilinear", align_corners=False)) == 4 * 2 * 8 * 20 * 24
    assert count(lambda t: up(t, scale_factor=2, mode="nearest")) == 2 * 8 * 20 * 24
    assert count(lambda t: F.adaptive_avg_pool2d(t, 1)) == 2 * 8 * 10 * 12
    affine = torch.empty(12, device="meta")
    assert count(lambda t: F.layer_norm(t, (12,), affine, affine)) == 5 * 2 * 8 * 10 * 12
    assert count(lambda t: F.layer_norm(t, (12,))) == 4 * 2 * 8 * 10 * 12
    stats = torch.empty(8, device="meta")
    assert count(lambda t: F.batch_norm(t, stats, stats, stats, stats, training=False)) == 2 * 2 * 8 * 10 * 12
    # Elementwise work, activations and reductions are free, as in fvcore.
    assert count(lambda t: F.gelu(t * 2 + 1).mean(1)) == 0


def test_meta_real_and_exported_counts_agree():
    torch.manual_seed(0)
    model = create_model("seemore_t", 4).eval()
    shape = (1, 3, 16, 16)  # the smallest input T accepts keeps the real forward pass cheap
    meta = profile_macs(model, shape)
    # Counting on meta must not touch the real weights.
    assert all(p.device.type == "cpu" for p in model.parameters())

    image = torch.rand(shape)
    routed = routed_macs(model, image)  # real forward pass, counting only the selected experts
    assert routed.dense == meta.total
    cost = moe_cost(model, meta)
    assert routed.macs == cost.top1(routed.selected[0])
    assert cost.top1([0] * 6) <= routed.macs < meta.total

    # The aten graph the exporters start from costs the same.
    exported = torch.export.export(model, (image,))
    assert sum(macs_by_node(exported.graph_module).values()) == meta.total


def test_cli_writes_json(tmp_path: Path, capsys, table):
    out = tmp_path / "sub" / "cost.json"
    assert main(["--json", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    # Without --size: the paper's HR output (1280 wide, 720 high) at every scale.
    assert doc["hr_size"] == [1280, 720] and doc["lr_size"] is None
    assert {m["name"] for m in doc["models"]} == {r.name for r in table.values()}
    for m in doc["models"]:
        assert m["gmacs_paper"] == PAPER_GMACS[m["variant"]][m["scale"] - 2]
        assert m["macs_dense"] > m["macs_paper"]
    printed = capsys.readouterr().out
    assert "seemore_t_x4" in printed and "11.93" in printed
    assert "HR output 720x1280 (HxW) at every scale" in printed
    assert not [p for p in out.parent.iterdir() if p.name != "cost.json"]  # no temp file left


def test_cli_size_is_the_lr_input_at_every_scale(tmp_path: Path, capsys, table):
    out = tmp_path / "cost.json"
    assert main(["--size", "180x320", "--json", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    assert doc["lr_size"] == [320, 180] and doc["hr_size"] is None
    for m in doc["models"]:
        assert m["lr_size"] == [320, 180]
        assert m["hr_size"] == [320 * m["scale"], 180 * m["scale"]]
    # At x4 an LR of 180x320 is the paper's 720x1280 output, so those rows equal the default table's.
    x4 = {m["variant"]: m for m in doc["models"] if m["scale"] == 4}
    for variant, m in x4.items():
        assert m["macs_paper"] == table[(variant, 4)].macs_paper
    printed = capsys.readouterr().out
    assert "LR input 180x320 (HxW) at every scale" in printed


def test_library_default_is_unchanged_by_the_lr_convention(table):
    row = table[("seemore_t", 3)]
    assert row.hr_size == (1280, 720) and row.lr_size == (426, 240)
    assert cost_table(lr_input=(240, 426))[1].lr_size == (426, 240)


@pytest.mark.parametrize(
    "argv",
    [
        ["--size", "12"],  # not HxW
        ["--size", "12x"],
        ["--size", "0x720"],
        ["--size", "axb"],
        ["--size", "12x12"],  # below SeemoRe-T's 16x16 minimum LR input
        ["--size", "180x320x3"],
        ["--json", "FOLDER"],
    ],
)
def test_cli_bad_input_is_one_line(tmp_path: Path, capsys, argv: list[str]):
    out = tmp_path / "cost.json"
    argv = [str(tmp_path) if a == "FOLDER" else a for a in argv]
    if "--json" not in argv:
        argv += ["--json", str(out)]
    try:
        code = main([*argv, "--no-progress"])
    except SystemExit as exc:  # argparse rejects the flag before main returns
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seemore-info: error:") and "\n" not in err, err
    assert not out.exists()
