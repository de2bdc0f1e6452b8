"""Published anchors: the shipped ``mobile/anchors.toml``, its layer tables' costs, and the validator's failures."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from seemore.profiling.anchors import (
    ANCHORS_PATH,
    Anchor,
    AnchorError,
    anchor_costs,
    load_anchors,
    load_models,
    model_costs,
)
from seemore.profiling.devices import REGISTRY_PATH, Registry, load_registry

from conftest import toml_number_leaves

REPO = Path(__file__).resolve().parent.parent
PROVENANCES = ("source", "assumed", "measured")

# id -> (model, device, backend or unit, precision, published ms): the anchors the docs give.
REQUIRED = {
    "edsr-iphone15pro-coreml-fp16": ("edsr_r16f64_x2", "iphone15pro", "executorch-coreml", "fp16", 77.35),
    "edsr-iphone15pro-xnnpack-int8": ("edsr_r16f64_x2", "iphone15pro", "executorch-xnnpack", "int8", 168.4),
    "mobilenetv2-iphone15pro-coreml-fp16": ("mobilenet_v2", "iphone15pro", "executorch-coreml", "fp16", 0.631),
    "mobilenetv2-galaxys22-xnnpack-int8": ("mobilenet_v2", "galaxy-s22", "executorch-xnnpack", "int8", 10.80),
    "realesrgan-general-x4v3-galaxys24-npu-tflite-fp16": ("realesrgan_general_x4v3", "galaxy-s24", "npu", "fp16",
                                                          4.294),
    "realesrgan-general-x4v3-galaxys24-npu-tflite-int8": ("realesrgan_general_x4v3", "galaxy-s24", "npu", "int8",
                                                          1.231),
    "quicksrnetlarge-galaxys24-npu-tflite-fp16": ("quicksrnet_large_x4", "galaxy-s24", "npu", "fp16", 1.461),
    "quicksrnetlarge-galaxys24-npu-tflite-int8": ("quicksrnet_large_x4", "galaxy-s24", "npu", "int8", 0.483),
}
# The docs' sanity numbers: (model, input, MACs). PROFILING.md derives the first two, the paper gives the third.
MAC_SANITY = [("edsr_r16f64_x2", (224, 224), 68.9e9), ("realesrgan_general_x4v3", (128, 128), 19.8e9),
              ("mobilenet_v2", (224, 224), 0.30e9)]
# Parameter counts as Qualcomm AI Hub gives them (PROFILING.md): an independent check of each SR table.
PARAMS = {"realesrgan_general_x4v3": 1.21e6, "quicksrnet_large_x4": 436e3, "quicksrnet_small_x4": 33e3,
          "esrgan_x4": 16.7e6}


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The shipped device registry, loaded once."""
    return load_registry()


@pytest.fixture(scope="module")
def anchors(registry: Registry) -> list[Anchor]:
    """The shipped anchors, loaded once."""
    return load_anchors(registry=registry)


# ------------------------------------------------------------------------------ the shipped file


def test_default_path_is_next_to_the_device_registry() -> None:
    assert ANCHORS_PATH == REPO / "mobile" / "anchors.toml" == REGISTRY_PATH.parent / "anchors.toml"
    assert ANCHORS_PATH.is_file()


def test_shipped_file_has_the_documented_anchors(anchors: list[Anchor]) -> None:
    by_id = {a.id: a for a in anchors}
    assert len(by_id) == len(anchors) >= 20
    for anchor_id, (model, device, where, precision, ms) in REQUIRED.items():
        a = by_id[anchor_id]
        assert (a.model, a.device, a.backend or a.unit, a.precision) == (model, device, where, precision), anchor_id
        assert a.latency.to("ms") == pytest.approx(ms) and a.latency.unit == "ms", anchor_id
    # Every AI Hub SR anchor is a 128x128 input on the S24's NPU, through TFLite or QNN.
    ai_hub = [a for a in anchors if a.device == "galaxy-s24"]
    assert {a.model for a in ai_hub} >= {"realesrgan_general_x4v3", "quicksrnet_large_x4"}
    for a in ai_hub:
        assert a.input_hw == (128, 128) and a.unit == "npu" and a.backend is None
        assert "AI Hub" in a.latency.text and ("TFLite" in a.latency.text or "QNN" in a.latency.text)
    edsr = by_id["edsr-iphone15pro-coreml-fp16"]
    assert edsr.input_hw == (224, 224) and edsr.input_provenance == "source"
    assert "extension/benchmark/README.md" in edsr.latency.text and "[read]" in edsr.latency.text


def test_every_anchor_names_what_the_registry_has(anchors: list[Anchor], registry: Registry) -> None:
    for a in anchors:
        device = registry.any_device(a.device)
        if a.backend is not None:
            assert a.backend in device.backends, a.id
            assert device.backends[a.backend].unit == a.unit, a.id
        else:
            # A bare unit only where no backend of ours reaches it.
            assert not any(b.unit == a.unit for b in device.backends.values()), a.id
        assert device.unit(a.unit).peak_gmacs(a.precision) > 0, a.id
    # The Galaxy S22 anchor is what brought the anchor-only device in.
    assert {a.device for a in anchors} & set(registry.anchor_devices) == {"galaxy-s22"}


def test_every_number_in_the_file_has_provenance() -> None:
    # Read the raw TOML, independently of the loader.
    data = tomllib.loads(ANCHORS_PATH.read_text(encoding="utf-8"))
    numbers = list(toml_number_leaves(data))
    assert len(numbers) > 200
    for path, table in numbers:
        assert table is not None, f"{path}: a bare number in a list"
        if path.startswith(".models.") and ".layers[" in path:
            # A layer-table fact: the model's paper, its `source`, vouches for it.
            model = data["models"][path.split(".")[2]]
            assert isinstance(model.get("source"), str) and len(model["source"]) > 20, path
            continue
        kinds = [k for k in PROVENANCES if k in table]
        assert len(kinds) == 1, f"{path}: provenance {kinds}"
        assert isinstance(table[kinds[0]], str) and len(table[kinds[0]].strip()) >= 4, f"{path}: empty provenance"
        assert kinds[0] != "measured", f"{path}: an anchor is published, not measured here"
        if ".latency." in path:
            assert kinds == ["source"] and table["unit"] == "ms", path
    for model_id, model in data["models"].items():
        assert model["source"].strip() and model["name"].strip(), model_id


def test_mac_sanity_numbers_within_3_percent() -> None:
    for model, hw, macs in MAC_SANITY:
        got = model_costs(model, hw, "fp16").macs
        assert got == pytest.approx(macs, rel=0.03), f"{model}: {got / 1e9:.3f} GMAC, docs {macs / 1e9:g}"


def test_parameter_counts_match_ai_hub() -> None:
    models = load_models()
    for model_id, params in PARAMS.items():
        assert models[model_id].param_count == pytest.approx(params, rel=0.03), model_id


def test_op_classes_per_model() -> None:
    mnv2 = model_costs("mobilenet_v2", (224, 224), "fp32").work_by_class()
    assert mnv2["dwconv"] > 0 and mnv2["conv"] > mnv2["dwconv"]
    assert mnv2["matmul"] == 1280 * 1000  # the classifier on the pooled map
    # The global average pool reads every element of the last 7x7x1280 map once.
    assert mnv2["reduction"] == 1280 * 7 * 7 and mnv2["movement"] == 0 and mnv2["resize"] == 0
    edsr_cost = model_costs("edsr_r16f64_x2", (224, 224), "fp32")
    edsr = edsr_cost.work_by_class()
    assert edsr["dwconv"] == 0 and edsr["matmul"] == 0 and edsr["resize"] == 0
    assert edsr["movement"] == 64 * 448 * 448  # the pixel shuffle's output
    assert sum(op.op_class == "conv" for op in edsr_cost.ops) == 1 + 32 + 1 + 1 + 1
    # ReLU, residual scaling and residual adds of 16 blocks, and the global skip.
    assert edsr["elementwise"] == (16 * 3 + 1) * 64 * 224 * 224
    realesrgan = model_costs("realesrgan_general_x4v3", (128, 128), "int8").work_by_class()
    assert realesrgan["resize"] == 3 * 512 * 512 and realesrgan["dwconv"] == 0


def test_costs_scale_with_input_and_precision() -> None:
    small = model_costs("edsr_r16f64_x2", (224, 224), "fp32")
    large = model_costs("edsr_r16f64_x2", (448, 448), "fp32")
    assert large.macs == 4 * small.macs
    # Weights are not per pixel, so bytes grow a little less than 4x.
    assert 3.9 * small.bytes < large.bytes < 4 * small.bytes
    fp16 = model_costs("edsr_r16f64_x2", (224, 224), "fp16")
    int8 = model_costs("edsr_r16f64_x2", (224, 224), "int8")
    assert small.bytes == 2 * fp16.bytes == 4 * int8.bytes and fp16.macs == small.macs
    # A non-square, odd input: strided rows round up (225 -> 113 -> ... -> 8 at 1/32).
    odd = model_costs("mobilenet_v2", (225, 161), "fp32")
    assert odd.work_by_class()["reduction"] == 1280 * 8 * 6 and odd.macs > 0


def test_anchor_costs_use_the_anchor_input_and_precision(anchors: list[Anchor], registry: Registry) -> None:
    for a in anchors:
        cost = anchor_costs(a)
        assert cost == model_costs(a.model, a.input_hw, a.precision) and cost.macs > 0
        unit_peak = registry.any_device(a.device).unit(a.unit).peak_gmacs(a.precision) * 1e9
        # No published run can beat its unit's peak: a violation is a wrong table or a wrong peak.
        assert cost.macs / a.latency_s < unit_peak, f"{a.id}: {cost.macs / a.latency_s / 1e12:.2f} TMAC/s"


def test_model_costs_errors() -> None:
    with pytest.raises(AnchorError, match=r"^unknown model 'vgg16'; known: edsr_r16f64_x2, "):
        model_costs("vgg16", (224, 224), "fp32")
    with pytest.raises(AnchorError, match="precision must be one of fp32, fp16, int8"):
        model_costs("mobilenet_v2", (224, 224), "int4")
    with pytest.raises(AnchorError, match="input size must be two positive integers"):
        model_costs("mobilenet_v2", (0, 224), "fp32")


# ------------------------------------------------------------------------------ hand-computed costs

BASE = """
format = "seemore-mobile/anchors/1"

[[anchors]]
id = "tiny-pixel8-xnnpack-int8"
model = "tiny"
input = { height = 8, width = 8, source = "test" }
device = "pixel8"
backend = "executorch-xnnpack"
precision = "int8"
latency = { value = 1.5, unit = "ms", source = "test" }

[[anchors]]
id = "tiny-s24-npu-fp16"
model = "tiny"
input = { height = 8, width = 8, source = "test" }
device = "galaxy-s24"
unit = "npu"
precision = "fp16"
latency = { value = 0.5, unit = "ms", source = "test" }

[models.tiny]
name = "tiny test net"
source = "test paper"
macs = { value = 0.6656, unit = "MMAC", height = 80, width = 80, source = "test" }
layers = [
  { op = "conv", cin = 3, cout = 8, kernel = 3, stride = 2, scale = 1 },
  { op = "relu", channels = 8, scale = 0.5 },
  { op = "conv", cin = 8, cout = 8, kernel = 3, groups = 8, scale = 0.5 },
  { op = "conv", cin = 8, cout = 8, kernel = 1, repeat = 2, scale = 0.5 },
  { op = "pixel_shuffle", channels = 8, factor = 2, scale = 0.5 },
  { op = "mean", channels = 2, scale = 1 },
  { op = "linear", cin = 2, cout = 10, pooled = true },
]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "anchors.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _variant(old: str, new: str) -> str:
    assert old in BASE, f"the mutation target {old!r} is not in the base document"
    return BASE.replace(old, new, 1)


def test_hand_computed_costs(tmp_path: Path, registry: Registry) -> None:
    path = _write(tmp_path, BASE)
    assert [a.id for a in load_anchors(path, registry)] == ["tiny-pixel8-xnnpack-int8", "tiny-s24-npu-fp16"]
    cost = model_costs("tiny", (8, 8), "fp32", path)
    got = [(op.op_class, op.work, op.bytes) for op in cost.ops]
    assert got == [
        ("conv", 4 * 4 * 8 * 3 * 9, (3 * 64 + 8 * 16 + 8 * 3 * 9 + 8) * 4),  # stride 2: 8x8 -> 4x4
        ("elementwise", 128, (128 + 128) * 4),
        ("dwconv", 4 * 4 * 8 * 9, (128 + 128 + 8 * 9 + 8) * 4),  # groups == cin == cout
        ("conv", 4 * 4 * 8 * 8, (128 + 128 + 64 + 8) * 4),
        ("conv", 4 * 4 * 8 * 8, (128 + 128 + 64 + 8) * 4),  # repeat = 2: two ops
        ("movement", 2 * 8 * 8, (128 + 128) * 4),  # 8 channels at 4x4 -> 2 at 8x8
        ("reduction", 128, (128 + 2) * 4),  # the mean reads all 2 x 8 x 8 elements
        ("matmul", 2 * 10, (2 + 10 + 2 * 10 + 10) * 4),
    ]
    assert len({op.name for op in cost.ops}) == len(cost.ops)
    assert cost.macs == 6676 and model_costs("tiny", (8, 8), "int8", path).bytes * 4 == cost.bytes
    # An odd input: sizes round up, so the ReLU after the stride-2 conv sees the conv's 5x5 output.
    odd = model_costs("tiny", (9, 7), "fp32", path).ops
    assert (odd[0].work, odd[1].work) == (5 * 4 * 8 * 3 * 9, 8 * 5 * 4)
    assert odd[5].work == 2 * 10 * 8  # pixel shuffle: 5x4 -> 10x8
    # The macs reference is at 80x80: 100x the 8x8 convs, the classifier once.
    assert model_costs("tiny", (80, 80), "fp32", path).macs == 100 * (6676 - 20) + 20 == 665620


# ----------------------------------------------------------------------------- validator failures


@pytest.mark.parametrize(("old", "new", "starts"), [
    # provenance
    ('latency = { value = 1.5, unit = "ms", source = "test" }', 'latency = { value = 1.5, unit = "ms" }',
     "anchors[0].latency: no provenance"),
    ('latency = { value = 1.5, unit = "ms", source = "test" }', "latency = 1.5",
     "anchors[0].latency: no provenance: a bare number"),
    ('latency = { value = 1.5, unit = "ms", source = "test" }',
     'latency = { value = 1.5, unit = "ms", assumed = "x" }', "anchors[0].latency.assumed: not allowed here"),
    ('latency = { value = 1.5, unit = "ms", source = "test" }',
     'latency = { value = 1.5, unit = "ms", source = "a", measured = "b" }', "anchors[0].latency: more than one"),
    ('latency = { value = 1.5, unit = "ms", source = "test" }', 'latency = { value = 1.5, unit = "ms", source = " " }',
     "anchors[0].latency.source: must be a non-empty string"),
    ('latency = { value = 1.5, unit = "ms"', 'latency = { value = 1.5, unit = "GHz"',
     "anchors[0].latency.unit: unknown unit 'GHz' for time"),
    ('latency = { value = 1.5,', 'latency = { value = -1.5,', "anchors[0].latency.value: must be a positive number"),
    ('input = { height = 8, width = 8, source = "test" }', "input = { height = 8, width = 8 }",
     "anchors[0].input: no provenance"),
    ('input = { height = 8, width = 8, source = "test" }', 'input = { height = 8.5, width = 8, source = "test" }',
     "anchors[0].input.height: must be a positive integer"),
    ('macs = { value = 0.6656, unit = "MMAC", height = 80, width = 80, source = "test" }',
     'macs = { value = 0.6656, unit = "MMAC", height = 80, width = 80 }', "models.tiny.macs: no provenance"),
    ('source = "test paper"\n', "", "models.tiny.source: missing"),
    # devices, backends, units, precisions
    ('device = "pixel8"', 'device = "pixel7"', "anchors[0].device: unknown device 'pixel7' (known: galaxy-s22, "),
    ('backend = "executorch-xnnpack"', 'backend = "coreml"', "anchors[0].backend: pixel8 has no backend 'coreml'"),
    ('backend = "executorch-xnnpack"', 'unit = "npu"', "anchors[0].unit: pixel8 has no compute unit 'npu'"),
    ('backend = "executorch-xnnpack"', 'unit = "cpu"', "anchors[0].unit: pixel8 has backends on 'cpu'"),
    ('backend = "executorch-xnnpack"', 'backend = "executorch-xnnpack"\nunit = "cpu"',
     "anchors[0]: give exactly one of backend"),
    ('backend = "executorch-xnnpack"\n', '', "anchors[0]: give exactly one of backend"),
    ('precision = "int8"', 'precision = "int4"', "anchors[0].precision: must be one of fp32, fp16, int8"),
    ('precision = "fp16"', 'precision = "fp32"', "anchors[1].precision: unit 'npu' of galaxy-s24 has no fp32 peak"),
    # anchors
    ('model = "tiny"', 'model = "tinier"', "anchors[0].model: unknown model 'tinier'"),
    ('id = "tiny-s24-npu-fp16"', 'id = "tiny-pixel8-xnnpack-int8"', "anchors[1].id: duplicate anchor id"),
    ('precision = "int8"', 'precision = "int8"\nprecison = "int8"', "anchors[0].precison: unknown key"),
    ('id = "tiny-pixel8-xnnpack-int8"\n', '', "anchors[0].id: missing"),
    # layer tables
    ('{ op = "relu", channels = 8, scale = 0.5 }', '{ op = "conv3d", channels = 8, scale = 0.5 }',
     "models.tiny.layers[1].op: unknown op 'conv3d'"),
    ('{ op = "relu", channels = 8, scale = 0.5 }', '{ channels = 8, scale = 0.5 }',
     "models.tiny.layers[1].op: missing"),
    ('cin = 3, cout = 8, kernel = 3, stride = 2,', 'cin = 3, cout = 8, stride = 2,',
     "models.tiny.layers[0].kernel: missing"),
    ('{ op = "relu", channels = 8, scale = 0.5 }', '{ op = "relu", channels = 8, dilation = 2, scale = 0.5 }',
     "models.tiny.layers[1].dilation: unknown key"),
    ('{ op = "relu", channels = 8, scale = 0.5 }', '{ op = "relu", channels = 8, kernel = 3, scale = 0.5 }',
     "models.tiny.layers[1].kernel: unknown key"),
    ('{ op = "relu", channels = 8, scale = 0.5 }', '{ op = "relu", channels = 8 }',
     "models.tiny.layers[1]: give exactly one of scale"),
    ('{ op = "linear", cin = 2, cout = 10, pooled = true }', '{ op = "linear", cin = 2, cout = 10, pooled = false }',
     "models.tiny.layers[6].pooled: must be true"),
    ('{ op = "relu", channels = 8, scale = 0.5 }', '{ op = "relu", channels = 8, scale = -0.5 }',
     "models.tiny.layers[1].scale: must be a positive number"),
    ('kernel = 3, groups = 8,', 'kernel = 3, groups = 3,', "models.tiny.layers[2].groups: 3 does not divide cin = 8"),
    ('kernel = 1, repeat = 2,', 'kernel = 1, repeat = 0,', "models.tiny.layers[3].repeat: must be a positive integer"),
    ('{ op = "pixel_shuffle", channels = 8, factor = 2,', '{ op = "pixel_shuffle", channels = 6, factor = 2,',
     "models.tiny.layers[4].channels: 6 is not divisible by factor^2 = 4"),
    ('layers = [\n', 'layers = [\n  { op = "upsample", channels = 3, factor = 2, mode = "lanczos", scale = 1 },\n',
     "models.tiny.layers[0].mode: must be one of nearest, bilinear, bicubic"),
    # the reference totals
    ('value = 0.6656, unit = "MMAC"', 'value = 7.5, unit = "MMAC"',
     "models.tiny.macs: the layer table gives 0.6656 MMAC at 80x80, more than 3% from the reference 7.5 MMAC"),
    ('value = 0.6656, unit = "MMAC"', 'value = 6.676, unit = "GFLOP"', "models.tiny.macs.unit: unknown unit 'GFLOP'"),
    ('source = "test paper"', 'source = "test paper"\nparams = { value = 9, unit = "K", source = "test" }',
     "models.tiny.params: the layer table gives 0.478 K, more than 3% from the reference 9 K"),
    # the file
    ('format = "seemore-mobile/anchors/1"', 'format = "seemore-mobile/anchors/0"', "format: must be"),
    ('format = "seemore-mobile/anchors/1"', 'format = "seemore-mobile/anchors/1"\nextra = 1', "extra: unknown key"),
])
def test_validator_names_the_key(tmp_path: Path, registry: Registry, old: str, new: str, starts: str) -> None:
    with pytest.raises(AnchorError) as info:
        load_anchors(_write(tmp_path, _variant(old, new)), registry)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(starts), message


def test_unreadable_and_invalid_files(tmp_path: Path, registry: Registry) -> None:
    for text, expected in ((BASE + "\n[models.tiny\n", "not valid TOML"), (None, "cannot read the anchor file")):
        path = _write(tmp_path, text) if text is not None else tmp_path / "absent.toml"
        with pytest.raises(AnchorError, match=expected) as info:
            load_anchors(path, registry)
        assert "\n" not in str(info.value)
