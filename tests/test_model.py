"""The reference model: shapes, parameter counts, official names, checkpoints, routing, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import seemore
from seemore.checkpoint import CheckpointError, infer_config, read_metadata
from seemore.model import MoELayer

# docs/MODEL.md (parameters and MACs).
PAPER_PARAMS = {
    ("seemore_t", 2): 220_104, ("seemore_t", 3): 224_979, ("seemore_t", 4): 231_804,
    ("seemore_b", 2): 490_364, ("seemore_b", 3): 496_859, ("seemore_b", 4): 505_952,
    ("seemore_l", 2): 953_308, ("seemore_l", 3): 959_803, ("seemore_l", 4): 968_896,
}


@pytest.mark.parametrize(("variant", "scale"), sorted(PAPER_PARAMS))
def test_every_variant_builds_with_paper_params_and_shapes(variant: str, scale: int) -> None:
    torch.manual_seed(0)
    model = seemore.create_model(variant, scale).eval()
    assert sum(p.numel() for p in model.parameters()) == PAPER_PARAMS[(variant, scale)]
    with torch.inference_mode():
        out = model(torch.rand(1, 3, 16, 20))
    assert out.shape == (1, 3, 16 * scale, 20 * scale)
    assert torch.isfinite(out).all()


def test_list_models_covers_all_variants_and_scales() -> None:
    assert len(seemore.list_models()) == 9
    assert "seemore_t_x4" in seemore.list_models()


def test_official_state_dict_names() -> None:
    sd = seemore.create_model("seemore_t", 4).state_dict()
    assert len(sd) == 386  # docs/MODEL.md: T x4 has 386 tensors and no buffers
    assert "mean" not in sd
    assert sd["upsampler.0.weight"].shape == (48, 36, 3, 3)
    expected = [
        "conv_1.weight", "norm.weight", "norm.bias", "conv_2.weight",
        "body.0.local_block.norm_1.weight", "body.0.local_block.block.conv_1.0.weight",
        "body.0.local_block.block.conv_1.2.weight", "body.0.local_block.block.agg_conv.0.weight",
        "body.0.local_block.block.conv.0.weight", "body.0.local_block.block.conv.1.weight",
        "body.0.local_block.block.conv_2.0.conv.0.weight", "body.0.local_block.block.conv_2.0.conv.1.weight",
        "body.0.local_block.block.moe_layer.experts.2.conv_3.bias",
        "body.0.local_block.block.moe_layer.gate.body.2.weight", "body.0.local_block.block.proj.weight",
        "body.0.local_block.norm_2.bias", "body.0.local_block.ffn.fn_1.0.weight",
        "body.0.local_block.ffn.fn_2.0.weight", "body.0.local_block.ffn.gate.weight",
        "body.5.global_block.norm_1.weight", "body.5.global_block.block.proj.weight",
        "body.5.global_block.block.to_qv.0.weight", "body.5.global_block.block.attn.conv.0.weight",
        "body.5.global_block.block.attn.conv.1.weight", "body.5.global_block.norm_2.weight",
        "body.5.global_block.ffn.fn_1.0.weight", "body.5.global_block.ffn.gate.bias",
    ]
    missing = [k for k in expected if k not in sd]
    assert not missing
    ranks = [sd[f"body.0.local_block.block.moe_layer.experts.{i}.conv_1.weight"].shape[0] for i in range(3)]
    assert ranks == [2, 4, 8]
    assert "body.0.local_block.block.moe_layer.gate.body.2.bias" not in sd


def test_safetensors_round_trip_keeps_config_and_outputs(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = seemore.create_model("seemore_t", 3).eval()
    path = tmp_path / "t_x3.safetensors"
    seemore.save_model(model, path, record={"iterations": 7})
    meta = read_metadata(path)
    assert meta["seemore_config"]["variant"] == "seemore_t" and meta["seemore_config"]["scale"] == 3
    assert meta["training_record"] == {"iterations": 7}
    loaded = seemore.load_model(path)
    assert loaded.config == model.config and not loaded.training
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize("wrapper", ["params", "params_ema", "bare"])
def test_official_pth_loads_strict_and_infers_variant(tmp_path: Path, wrapper: str) -> None:
    torch.manual_seed(2)
    model = seemore.create_model("seemore_b", 2)
    sd = model.state_dict()
    obj = sd if wrapper == "bare" else {wrapper: sd}
    path = tmp_path / "official.pth"
    torch.save(obj, path)
    loaded = seemore.load_model(path)
    assert (loaded.config.variant, loaded.config.scale) == ("seemore_b", 2)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k])
    # Explicit variant/scale that match are accepted.
    seemore.load_model(path, variant="seemore_b", scale=2)


def test_mismatch_names_the_variant_and_scale_the_file_fits(tmp_path: Path) -> None:
    path = tmp_path / "l_x3.pth"
    torch.save({"params": seemore.create_model("seemore_l", 3).state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"seemore_l_x3, not seemore_t_x4") as info:
        seemore.load_model(path, variant="seemore_t", scale=4)
    assert "\n" not in str(info.value)


def test_unknown_state_dict_lists_first_bad_keys(tmp_path: Path) -> None:
    sd = seemore.create_model("seemore_t", 4).state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["conv_1.weight"]
    path = tmp_path / "bad.pth"
    torch.save({"params": sd}, path)
    assert infer_config(sd) is None
    with pytest.raises(CheckpointError, match="missing conv_1.weight; unexpected extra.weight"):
        seemore.load_model(path, variant="seemore_t", scale=4)


def test_missing_and_corrupt_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        seemore.load_model(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="not a file or a shipped checkpoint"):
        seemore.load_model("seemore_q_x9")
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="unreadable"):
        seemore.load_model(bad)
    bad_pth = tmp_path / "corrupt.pth"
    bad_pth.write_text("garbage")
    with pytest.raises(CheckpointError, match="unreadable"):
        seemore.load_model(bad_pth)


# --------------------------------------------------------------------------- routing


def _official_moe_forward(layer: MoELayer, inputs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The official eval path, written directly: Python indexing on the top-k result (batch 1 only)."""
    logits = layer.gate(inputs)
    weights = torch.softmax(logits, dim=1, dtype=torch.float).to(inputs.dtype)
    topk_weights, topk_experts = torch.topk(weights, layer.topk)
    out = inputs.clone()
    selected = [layer.experts[i] for i in topk_experts.squeeze(dim=0)]
    for i, expert in enumerate(selected):
        out += expert(inputs, k) * topk_weights[:, i : i + 1, None, None]
    return out


def _routing_sensitive_model(images: torch.Tensor) -> seemore.SeemoRe:
    """Random T x2 whose first router sends ``images[0..2]`` to experts 0, 1, 2 respectively.

    The first gate is set so that its logits for image i (i < 3) are 20 * e_i (a pseudo-inverse of
    their pooled router inputs), so routing really depends on content and the images disagree.
    """
    torch.manual_seed(3)
    model = seemore.create_model("seemore_t", 2).eval()
    first = next(m for m in model.modules() if isinstance(m, MoELayer))
    pooled: list[torch.Tensor] = []
    hook = first.gate.register_forward_pre_hook(lambda mod, args: pooled.append(args[0].mean((2, 3))))
    with torch.no_grad():
        model(images)
    hook.remove()
    p = pooled[0][:3]
    with torch.no_grad():
        first.gate.body[2].weight.copy_(20.0 * torch.linalg.pinv(p.T.double()).float())
    return model


def _images() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.stack([
        torch.rand(3, 32, 32, generator=gen),
        torch.rand(3, 32, 32, generator=gen) * 0.2,
        0.8 + 0.2 * torch.rand(3, 32, 32, generator=gen),
        torch.linspace(0, 1, 32).expand(3, 32, 32).clone(),
    ])


def test_dense_routing_equals_official_per_image_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    images = _images()
    model = _routing_sensitive_model(images)
    first_choice: list[list[int]] = []
    first = next(m for m in model.modules() if isinstance(m, MoELayer))
    hook = first.register_forward_hook(
        lambda mod, args, out: first_choice.append(mod.routing_weights(args[0]).argmax(1).tolist()))
    with torch.inference_mode():
        dense = model(images)
    hook.remove()
    assert first_choice[0][:3] == [0, 1, 2], "test images must route to different experts"

    with torch.inference_mode():
        dense_single = [model(img[None]) for img in images]
    monkeypatch.setattr(MoELayer, "forward", _official_moe_forward)
    with torch.inference_mode():
        official = [model(img[None]) for img in images]
    # Same image, same batch size: bit-identical (unselected experts contribute exactly 0).
    for a, b in zip(dense_single, official):
        assert torch.equal(a, b)
    # Batched: equal up to the conv kernels' batch-dependent summation order.
    torch.testing.assert_close(dense, torch.cat(official), rtol=0, atol=1e-5)


def test_training_mode_uses_the_same_dense_formula() -> None:
    images = _images()
    model = _routing_sensitive_model(images)
    x = images[:3]
    with torch.no_grad():
        eval_out = model(x)
        train_out = model.train()(x)
    assert torch.equal(eval_out, train_out)


def test_export_with_dynamic_batch_and_multiple_of_16_sides() -> None:
    torch.manual_seed(4)
    model = seemore.create_model("seemore_t", 4).eval()
    batch = torch.export.Dim("batch", min=1, max=8)
    # min 2: torch.export specialises a size of exactly 1 away, so sides are 32, 48, 64, ...
    h16, w16 = torch.export.Dim("h16", min=2, max=64), torch.export.Dim("w16", min=2, max=64)
    example = torch.rand(2, 3, 32, 48)
    program = torch.export.export(
        model, (example,), dynamic_shapes={"x": {0: batch, 2: 16 * h16, 3: 16 * w16}}
    )
    x = torch.rand(3, 3, 64, 32)
    with torch.inference_mode():
        expected = model(x)
        got = program.module()(x)
    assert got.shape == (3, 3, 256, 128)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_config_json_round_trip() -> None:
    cfg = seemore.get_config("seemore_l", 3)
    assert seemore.SeemoReConfig.from_json(cfg.to_json()) == cfg
    assert json.loads(cfg.to_json())["recursive"] == 1
    with pytest.raises(ValueError, match="unknown variant"):
        seemore.get_config("seemore_xl", 4)
    with pytest.raises(ValueError, match="scale"):
        seemore.get_config("seemore_t", 5)
