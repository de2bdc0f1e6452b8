"""The deploy form of SeemoRe equals the reference network (seemore/deploy.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import small_model

from seemore import create_model, list_shipped, load_model, save_model
from seemore.contract.spec import ExportSpec
from seemore.deploy import (
    CONTEXT_UPSAMPLE,
    FLOAT_MODULES,
    ContextUpsample,
    DeploySeemoRe,
    TopKRoutingMask,
    bilinear_matrix,
    convert_state_dict,
    moe_layers,
    shuffle_permutation,
)
from seemore.deploy.capture import capture_for_quantization, deploy_form
from seemore.export.calibration import center_crop, load_rgb
from seemore.model import SeemoRe, channel_shuffle, topk_mask
from seemore.paths import bundled_images, resolve_data_root

TOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # On shared, busy cores, multi-threaded ops wait for sleeping workers; one thread is faster.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lr_images(n: int, height: int, width: int) -> torch.Tensor:
    """``n`` real LR images (Set5/Set14 LR x4, else bundled photos) centre-cropped to one size."""
    root = resolve_data_root(None)
    paths: list[Path] = []
    if root is not None:
        for name in ("Set5", "Set14"):
            paths += sorted((root / "benchmark" / name / "LR_bicubic" / "X4").glob("*.png"))
    if not paths:
        paths = bundled_images()
    imgs = [load_rgb(p) for p in paths]
    imgs = [t for t in imgs if t.shape[-2] >= height and t.shape[-1] >= width]
    assert len(imgs) >= n, "not enough real images of the requested size"
    return torch.cat([center_crop(t, height, width) for t in imgs[:n]])


def seeded(variant: str, **overrides: object) -> SeemoRe:
    torch.manual_seed(0)
    return create_model(variant, 4, **overrides).eval()


def routing_choices(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Selected expert per image for every MoE layer: a list of (B,) index tensors."""
    choices: list[torch.Tensor] = []
    hooks = [
        layer.gate.register_forward_hook(lambda _m, _i, out: choices.append(out.argmax(1)))
        for layer in moe_layers(model)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return choices


def force_image_dependent_routing(model: SeemoRe, x: torch.Tensor) -> None:
    """Set every router so that the images of ``x`` pick different experts.

    Layer by layer, the router input of each image is recorded and the gate rows are
    set to the centred router inputs of the first images (scaled up), so image ``e``
    scores highest on expert ``e``.
    """
    for layer in moe_layers(model):
        pooled: list[torch.Tensor] = []
        hook = layer.gate.body[1].register_forward_hook(lambda _m, _i, out: pooled.append(out))
        with torch.no_grad():
            model(x)
        hook.remove()
        u = pooled[0]
        centre = u.mean(0, keepdim=True)
        d = u - centre
        # Orthogonal to the common part of the router inputs, so only what differs between
        # the images reaches the logits.
        unit = centre / centre.norm().clamp_min(1e-12)
        rows = d[: layer.gate.body[2].weight.shape[0]]
        rows = rows - (rows @ unit.T) * unit
        rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
        with torch.no_grad():
            layer.gate.body[2].weight.copy_(50.0 * rows)


@pytest.mark.parametrize("variant", ["seemore_t", "seemore_b", "seemore_l"])
def test_deploy_equals_reference_on_real_images(variant: str) -> None:
    ref = seeded(variant)
    dep = DeploySeemoRe.from_reference(ref)
    x = lr_images(2, 32, 48)
    with torch.no_grad():
        want, got = ref(x), dep(x)
    assert got.shape == (2, 3, 128, 192)
    assert (got - want).abs().max().item() <= TOL


def test_folded_norm_affines_and_split_convs_equal_the_reference() -> None:
    # Fresh models have LayerNorm weight 1 and bias 0, which would hide a wrong fold.
    ref = seeded("seemore_t")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if ".norm_" in name:
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if name.endswith("weight") else 0.0))
    dep = DeploySeemoRe.from_reference(ref)
    names = dict(dep.named_parameters())
    # The norms before 1x1 convs lost their affine; the one before the MoRE block's 3x3 conv kept it.
    assert "body.0.local_block.norm_2.weight" not in names and "body.0.global_block.norm_1.weight" not in names
    assert "body.0.local_block.norm_1.weight" in names
    x = lr_images(2, 32, 48)
    with torch.no_grad():
        assert (dep(x) - ref(x)).abs().max().item() <= TOL


def test_deploy_follows_image_dependent_routing() -> None:
    ref = seeded("seemore_t")
    x = lr_images(3, 48, 48)
    force_image_dependent_routing(ref, x)
    ref_choices = routing_choices(ref, x)
    # The construction must really make the routing differ between images of one batch.
    assert all(len(set(c.tolist())) > 1 for c in ref_choices)
    dep = DeploySeemoRe.from_reference(ref)
    assert [c.tolist() for c in routing_choices(dep, x)] == [c.tolist() for c in ref_choices]
    with torch.no_grad():
        assert (dep(x) - ref(x)).abs().max().item() <= TOL
        # Per image and batched give the same result (routing is per image).
        single = torch.cat([dep(x[i : i + 1]) for i in range(3)])
        assert (dep(x) - single).abs().max().item() <= TOL


def test_from_state_dict_matches_from_reference_and_rejects_wrong_keys() -> None:
    ref = seeded("seemore_t")
    a = DeploySeemoRe.from_reference(ref)
    b = DeploySeemoRe.from_state_dict(ref.state_dict(), ref.config)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    # One weight copy per application of the recursive agg conv, both equal to the shared one.
    p = "body.0.local_block.block."
    sd = a.state_dict()
    shared = ref.state_dict()[p + "agg_conv.0.weight"]
    assert torch.equal(sd[p + "agg_steps.0.0.weight"], shared)
    assert torch.equal(sd[p + "agg_steps.1.0.weight"], shared)
    assert sd[p + "agg_steps.0.0.weight"].data_ptr() != sd[p + "agg_steps.1.0.weight"].data_ptr()
    bad = dict(ref.state_dict())
    bad.pop("conv_1.weight")
    with pytest.raises(RuntimeError, match="conv_1.weight"):
        DeploySeemoRe.from_state_dict(bad, ref.config)


def test_convert_state_dict_does_not_touch_the_reference() -> None:
    ref = seeded("seemore_t")
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    convert_state_dict(ref.state_dict(), ref.config)
    DeploySeemoRe.from_reference(ref)
    assert all(torch.equal(before[k], v) for k, v in ref.state_dict().items())


def test_shuffle_permutation_is_the_channel_shuffle() -> None:
    y = torch.randn(2, 12, 3, 4)
    assert torch.equal(channel_shuffle(y, 2), y[:, shuffle_permutation(12)])


def one_step_below(x: torch.Tensor) -> torch.Tensor:
    """The next representable value towards zero of positive ``x`` (same dtype)."""
    int_type = {torch.float32: torch.int32, torch.float16: torch.int16}[x.dtype]
    return (x.view(int_type) - 1).view(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_arithmetic_topk_mask_equals_topk(k: int, dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    spread = torch.tensor([0.1, 1.0, 10.0, 40.0]).repeat_interleave(1000)[:, None]
    probs = torch.softmax(torch.randn(4000, 3) * spread, 1).to(dtype)
    # Near ties in permuted columns: winner, runner-up one representable step below, a third.
    top = (0.34 + 0.6 * torch.rand(600)).to(dtype)
    near = torch.stack([top, one_step_below(top), (top.float() * 0.5).to(dtype)], 1)
    cols = torch.stack([torch.randperm(3) for _ in range(600)])
    probs = torch.cat([torch.gather(near, 1, cols), probs])
    p = probs.float()
    untied = (p[:, :, None] == p[:, None, :]).sum((1, 2)) == 3
    assert untied[:600].all() and untied.sum() > 3000
    got = TopKRoutingMask(3, k)(probs).float()
    assert torch.equal(got[untied], topk_mask(p, k)[untied])


def test_arithmetic_topk_mask_keeps_all_tied_experts() -> None:
    probs = torch.tensor([[0.4, 0.4, 0.2], [0.5, 0.25, 0.25]])
    assert torch.equal(TopKRoutingMask(3, 1)(probs), torch.tensor([[0.4, 0.4, 0.0], [0.5, 0.0, 0.0]]))
    assert torch.equal(TopKRoutingMask(3, 2)(probs), torch.tensor([[0.4, 0.4, 0.0], [0.5, 0.25, 0.25]]))


def test_deploy_graph_avoids_ops_that_split_delegates() -> None:
    dep = DeploySeemoRe.from_reference(seeded("seemore_t", num_layers=1))
    program = torch.export.export(dep, (torch.full((2, 3, 32, 48), 0.5),), strict=False)
    names = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    for banned in ("topk", "scatter", "chunk", "split", "ones_like", "pow"):
        assert not any(banned in n for n in names), banned
    channel_means = [
        n for n in program.graph.nodes if n.op == "call_function" and "mean" in str(n.target) and n.args[1] != [-1, -2]
    ]
    assert not channel_means
    # No channel slice of a feature map is left (split 1x1 convs instead): only the (B, E)
    # routing probabilities are sliced.
    feature_slices = [
        n for n in program.graph.nodes
        if n.op == "call_function" and "slice" in str(n.target) and n.args[0].meta["val"].dim() > 2
    ]
    assert not feature_slices


def test_from_checkpoint_loads_our_safetensors(tmp_path: Path) -> None:
    ref = seeded("seemore_t", num_layers=1)
    save_model(ref, tmp_path / "m.safetensors")
    dep = DeploySeemoRe.from_checkpoint(tmp_path / "m.safetensors")
    x = lr_images(1, 32, 32)
    with torch.no_grad():
        assert (dep(x) - ref(x)).abs().max().item() <= TOL


def test_deploy_equals_shipped_checkpoint_on_real_images() -> None:
    shipped = list_shipped()
    if "seemore_t_x4" not in shipped:
        pytest.skip("no shipped seemore_t_x4 checkpoint yet")
    ref = load_model("seemore_t_x4")
    dep = DeploySeemoRe.from_checkpoint("seemore_t_x4")
    x = lr_images(2, 48, 64)
    with torch.no_grad():
        assert (dep(x) - ref(x)).abs().max().item() <= TOL


# (h, w) -> (H, W): exact multiples (x16, x4), the context of a 180x320 input (11x20, fractional),
# 1 -> N, N -> N, a downscale and odd fractional sizes.
RESIZES = [((4, 6), (64, 96)), ((45, 80), (180, 320)), ((11, 20), (180, 320)), ((1, 1), (16, 7)),
           ((1, 5), (9, 5)), ((7, 9), (7, 9)), ((3, 2), (50, 33)), ((12, 12), (5, 7))]


@pytest.mark.parametrize(("small", "big"), RESIZES)
def test_matmul_context_upsample_equals_bilinear_interpolate(small: tuple[int, int], big: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(sum(small + big))
    up = ContextUpsample("matmul")
    # U[0, 1) values, like images: both forms round the source coordinate in fp32 (in/out is
    # inexact), so their difference grows with the step between neighbouring pixels.
    x = torch.rand(2, 3, *small, generator=g)
    want = F.interpolate(x, size=big, mode="bilinear", align_corners=False)
    got = up(x, big)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-6
    assert torch.equal(ContextUpsample("bilinear")(x, big), want)
    # In fp64 (matrices built in fp64 too) the two are the same formula: equal to rounding.
    x64 = torch.randn(2, 3, *small, generator=g, dtype=torch.float64)
    want64 = F.interpolate(x64, size=big, mode="bilinear", align_corners=False)
    assert (up(x64, big) - want64).abs().max().item() <= 1e-12


def test_bilinear_matrix_rows_are_interpolation_weights() -> None:
    a = bilinear_matrix(180, 11, torch.zeros(1))
    assert a.shape == (180, 11) and a.dtype == torch.float32
    assert (a >= 0).all() and torch.allclose(a.sum(1), torch.ones(180), atol=1e-6)
    # Clamped at both borders: the first and last output rows copy the first and last input pixel.
    assert torch.equal(a[0], torch.eye(11)[0]) and torch.equal(a[-1], torch.eye(11)[-1])
    assert torch.equal(bilinear_matrix(7, 7, torch.zeros(1)), torch.eye(7))
    assert torch.equal(bilinear_matrix(5, 1, torch.zeros(1)), torch.ones(5, 1))
    assert bilinear_matrix(4, 2, torch.zeros(1, dtype=torch.float16)).dtype == torch.float16
    with pytest.raises(ValueError, match="unknown context upsample mode"):
        ContextUpsample("nearest")


def upsample_modes(model: torch.nn.Module) -> set[str]:
    return {m.mode for m in model.modules() if isinstance(m, ContextUpsample)}


def test_only_coreml_gets_the_matmul_context_upsample() -> None:
    ref = seeded("seemore_t", num_layers=1)
    assert CONTEXT_UPSAMPLE == {"coreml": "matmul"} and ContextUpsample in FLOAT_MODULES
    assert upsample_modes(deploy_form(ref)) == {"bilinear"}
    for backend in ("xnnpack", "vulkan", "litert", "cpu"):
        assert upsample_modes(deploy_form(ref, backend)) == {"bilinear"}, backend
    coreml = deploy_form(ref, "coreml")
    assert upsample_modes(coreml) == {"matmul"} and coreml.context_upsample == "matmul"
    assert upsample_modes(DeploySeemoRe.from_state_dict(ref.state_dict(), ref.config, "coreml")) == {"matmul"}
    # Same parameters and buffers in every form; a deploy form is returned as it is.
    default = deploy_form(ref)
    assert all(torch.equal(v, coreml.state_dict()[k]) for k, v in default.state_dict().items())
    assert deploy_form(coreml, "xnnpack") is coreml and deploy_form(default, "coreml") is default
    names = {str(n.target) for n in torch.export.export(
        coreml, (torch.full((1, 3, 32, 48), 0.5),), strict=False).graph.nodes if n.op == "call_function"}
    assert not any("upsample_bilinear" in n for n in names) and any("matmul" in n for n in names)


@pytest.mark.parametrize("variant", ["seemore_t", "seemore_b"])
def test_coreml_deploy_form_equals_reference_on_real_images(variant: str) -> None:
    ref = seeded(variant)
    dep = deploy_form(ref, "coreml")
    x = lr_images(2, 40, 56)  # context 2x3 -> 40x56: fractional factors
    with torch.no_grad():
        assert (dep(x) - ref(x)).abs().max().item() <= TOL


def test_coreml_deploy_form_equals_shipped_checkpoint_on_real_images() -> None:
    if "seemore_t_x4" not in list_shipped():
        pytest.skip("no shipped seemore_t_x4 checkpoint yet")
    ref = load_model("seemore_t_x4")
    dep = DeploySeemoRe.from_checkpoint("seemore_t_x4", "coreml")
    x = lr_images(2, 60, 80)
    with torch.no_grad():
        assert (dep(x) - ref(x)).abs().max().item() <= TOL


def test_coreml_form_captures_with_dynamic_shapes() -> None:
    ref = seeded("seemore_t", num_layers=1)
    dep = deploy_form(ref, "coreml")
    captured = capture_for_quantization(ref, ExportSpec(backend="coreml", precision="int8", height=48, width=64))
    assert not any("upsample_bilinear" in str(n.target) for n in captured.graph.nodes if n.op == "call_function")
    for shape in ((1, 40, 56), (2, 64, 100)):
        x = lr_images(shape[0], shape[1], shape[2])
        with torch.no_grad():
            got, want = captured(x), dep(x)
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= 1e-6
        assert (got - ref(x)).abs().max().item() <= TOL


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_coreml_program_folds_the_interpolation_matrices() -> None:
    import logging

    ct = pytest.importorskip("coremltools")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    counts: dict[str | None, Counter[str]] = {}
    for backend in (None, "coreml"):
        dep = deploy_form(small_model(), backend)
        with torch.no_grad():
            program = torch.export.export(dep, (torch.full((1, 3, 32, 48), 0.5),), strict=False)
        mlmodel = ct.convert(program.run_decompositions({}), convert_to="mlprogram",
                             minimum_deployment_target=ct.target.iOS17, compute_precision=ct.precision.FLOAT16,
                             skip_model_load=True)
        ops = list(mlmodel._mil_program.functions["main"].operations)
        counts[backend] = Counter(op.op_type for op in ops)
        # Each matmul multiplies the context by a constant (folded) matrix.
        for op in (o for o in ops if o.op_type == "matmul"):
            assert (op.x.val is None) != (op.y.val is None), op
    default, coreml = counts[None], counts["coreml"]
    assert default["upsample_bilinear"] == 1 and "matmul" not in default
    # One group: the upsample becomes 2 matmuls with constant matrices. Every other op count is
    # unchanged: nothing that builds the matrices (range_1d, sub, abs, clip, relu, expand_dims,
    # transpose, cast) survives coremltools' constant folding.
    assert coreml["matmul"] == 2 and "upsample_bilinear" not in coreml
    changed = {op: (default[op], coreml[op]) for op in set(default) | set(coreml)
               if op not in ("matmul", "const", "upsample_bilinear") and default[op] != coreml[op]}
    assert not changed, changed
