"""The device and budget registry: the shipped ``mobile/devices.toml`` and the validator's failures."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seemore.profiling.devices import (
    CANONICAL,
    HOST_DEVICE,
    PROVENANCES,
    REGISTRY_PATH,
    UNITS,
    Quantity,
    Registry,
    RegistryError,
    load_registry,
)

from conftest import toml_number_leaves

REPO = Path(__file__).resolve().parent.parent
DEVICES = ("pixel8", "pixel9", "galaxy-s24", "iphone15pro", "iphone14pro", "host")
ANDROID_BACKENDS = {"executorch-xnnpack": ("cpu", "pte"), "executorch-vulkan": ("gpu", "pte"),
                    "litert-cpu": ("cpu", "tflite"), "litert-gpu": ("gpu", "tflite")}
IOS_BACKENDS = {"coreml": ("ane", "mlpackage"), "executorch-xnnpack": ("cpu", "pte"),
                "executorch-coreml": ("ane", "pte")}
ANCHOR_ONLY = {"galaxy-s22"}
HOST_BACKENDS = {"executorch-xnnpack": ("cpu", "pte"), "litert-cpu": ("cpu", "tflite")}


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The shipped registry, loaded once."""
    return load_registry()


def _quantities(obj: Any, path: str = "") -> Iterator[tuple[str, Quantity]]:
    """Every :class:`Quantity` reachable from a loaded registry object, with where it is."""
    if isinstance(obj, Quantity):
        yield path, obj
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _quantities(getattr(obj, f.name), f"{path}.{f.name}")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _quantities(value, f"{path}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _quantities(value, f"{path}[{i}]")


# ------------------------------------------------------------------------------ the shipped file


def test_default_path_is_the_repository_file() -> None:
    assert REGISTRY_PATH == REPO / "mobile" / "devices.toml"
    assert REGISTRY_PATH.is_file()


def test_shipped_registry_has_every_device(registry: Registry) -> None:
    assert set(DEVICES) <= set(registry.devices)
    for name in DEVICES:
        device = registry.device(name)
        assert device.id == name and device.name and device.soc
        assert device.clusters and "cpu" in device.units
    platforms = {name: registry.device(name).platform for name in DEVICES}
    assert platforms == {"pixel8": "android", "pixel9": "android", "galaxy-s24": "android",
                         "iphone15pro": "ios", "iphone14pro": "ios", "host": "linux"}


def test_every_number_in_the_file_has_exactly_one_provenance() -> None:
    # Read the raw TOML, not the loader's result: this checks the file independently of the validator.
    data = tomllib.loads(REGISTRY_PATH.read_text(encoding="utf-8"))
    numbers = list(toml_number_leaves(data))
    assert len(numbers) > 100
    for path, table in numbers:
        assert table is not None and path.endswith(".value"), f"{path}: a number outside a quantity table"
        kinds = [k for k in PROVENANCES if k in table]
        assert len(kinds) == 1, f"{path}: provenance {kinds}"
        assert isinstance(table[kinds[0]], str) and len(table[kinds[0]].strip()) >= 4, f"{path}: empty provenance"
        assert isinstance(table.get("unit"), str), f"{path}: no unit"
        if kinds[0] == "measured":
            assert path.startswith(f".devices.{HOST_DEVICE}."), f"{path}: measured outside the host"


def test_every_quantity_converts_to_its_canonical_unit(registry: Registry) -> None:
    found = list(_quantities(registry))
    assert len(found) > 100
    for path, q in found:
        assert q.unit in UNITS, path
        assert CANONICAL[q.dimension] in UNITS, path
        assert math.isfinite(q.canonical) and q.canonical > 0, path
        assert q.to(q.unit) == pytest.approx(q.value), path
        assert q.provenance in PROVENANCES and q.text.strip(), path
        if q.provenance == "measured":
            assert path.startswith(f".devices.{HOST_DEVICE}."), path


def test_compute_units_carry_peaks_and_power(registry: Registry) -> None:
    for name in DEVICES:
        for unit in registry.device(name).units.values():
            assert unit.peak, f"{name}.{unit.name}: no peak"
            for precision, q in unit.peak.items():
                assert q.dimension == "compute" and unit.peak_gmacs(precision) > 0
            assert 0 < unit.active_power.to("W") < 20, f"{name}.{unit.name}: implausible power"
    # The CPU unit of a phone: int8 beats fp32 (SDOT), and a 2-4 thread run.
    for name in DEVICES:
        cpu = registry.device(name).unit("cpu")
        assert cpu.peak_gmacs("int8") > cpu.peak_gmacs("fp32")
        assert cpu.threads is not None and 2 <= cpu.threads.value <= 4
    assert registry.device("pixel8").unit("cpu").peak_gmacs("int8") == pytest.approx(413.0)
    with pytest.raises(RegistryError, match="no fp32 peak"):
        registry.device("iphone15pro").unit("ane").peak_gmacs("fp32")


def test_host_peaks_are_measured_and_phones_never(registry: Registry) -> None:
    host = registry.device(HOST_DEVICE).unit("cpu")
    assert {q.provenance for q in host.peak.values()} == {"measured"}
    for name in DEVICES:
        if name != HOST_DEVICE:
            assert all(q.provenance != "measured" for _, q in _quantities(registry.device(name))), name


@pytest.mark.parametrize("name", [d for d in DEVICES if d != HOST_DEVICE] + [HOST_DEVICE])
def test_backends_by_platform(registry: Registry, name: str) -> None:
    device = registry.device(name)
    expected = {"android": ANDROID_BACKENDS, "ios": IOS_BACKENDS, "linux": HOST_BACKENDS}[device.platform]
    got = {b.name: (b.unit, b.artifact) for b in device.backends.values()}
    assert expected.items() <= got.items()
    for backend in device.backends:
        assert device.unit_of(backend).name == device.backends[backend].unit


def test_pixel_tpu_is_documented_but_unreachable(registry: Registry) -> None:
    for name in ("pixel8", "pixel9"):
        device = registry.device(name)
        assert device.npu is not None and "TPU" in device.npu.name
        assert not (device.npu.executorch or device.npu.litert or device.npu.coreml)
        assert "npu" not in device.units
    assert registry.device("iphone15pro").npu.coreml  # type: ignore[union-attr]


def test_scenarios_photo_and_video(registry: Registry) -> None:
    photo = registry.scenario("photo")
    assert photo.per == "photo" and photo.lr_size == (750, 1000) and photo.output_size == (3000, 4000)
    assert photo.tile == (180, 320) and photo.scale.value == 4 and photo.frame_rate is None
    assert 0 < photo.budget.latency.to("s") <= 10 and 0 < photo.budget.energy.to("J") <= 50
    assert 0 < photo.budget.power.to("W") <= 5
    video = registry.scenario("video")
    assert video.per == "frame" and video.lr_size == (180, 320) == video.tile and video.output_size == (720, 1280)
    assert video.frame_rate is not None and video.frame_rate.to("fps") == 30
    assert video.budget.latency.to("s") <= 1 / 30
    assert video.budget.power.to("W") <= 1.0
    assert video.budget.energy.to("mJ") == pytest.approx(33.0)
    # A frame's energy budget at the frame rate stays within the power budget.
    assert video.budget.energy.to("J") * video.frame_rate.to("fps") <= video.budget.power.to("W") + 1e-9
    assert video.budget.energy_stretch is not None and video.budget.energy_stretch.to("mJ") < 33.0
    for scenario in (photo, video):
        for _, q in _quantities(scenario):
            assert q.provenance in ("source", "assumed")


def test_anchor_only_device_is_listed_apart(registry: Registry) -> None:
    # The Galaxy S22 carries published anchors only: profiling listings never meet it.
    assert ANCHOR_ONLY <= set(registry.anchor_devices) and not ANCHOR_ONLY & set(registry.devices)
    s22 = registry.any_device("galaxy-s22")
    assert s22.anchor_only and s22.platform == "android" and s22.soc == "Qualcomm Snapdragon 8 Gen 1"
    assert [(c.core, c.count.value, c.max_clock.to("GHz")) for c in s22.clusters] == [
        ("Cortex-X2", 1, 3.0), ("Cortex-A710", 3, 2.5), ("Cortex-A510", 4, 1.8)]
    # From memory, not from the docs: nothing about its CPU may claim a source.
    assert {q.provenance for _, q in _quantities(s22.clusters)} == {"assumed"}
    assert {q.provenance for _, q in _quantities(s22.units)} == {"assumed"}
    assert s22.unit_of("executorch-xnnpack").name == "cpu" and s22.unit("cpu").peak_gmacs("int8") > 0
    assert not any(d.anchor_only for d in registry.devices.values())
    assert registry.any_device("pixel8") is registry.device("pixel8")
    with pytest.raises(RegistryError, match=r"^unknown device 'galaxy-s22'; known: galaxy-s24, "):
        registry.device("galaxy-s22")
    with pytest.raises(RegistryError, match=r"^unknown device 'pixel7'; known: galaxy-s22, galaxy-s24, "):
        registry.any_device("pixel7")


def test_quantity_conversions() -> None:
    assert Quantity(33.3, "ms", "assumed", "x").to("s") == pytest.approx(0.0333)
    assert Quantity(890, "MHz", "source", "x").canonical == pytest.approx(0.89)
    assert Quantity(17.5, "TMAC/s", "source", "x").to("GMAC/s") == pytest.approx(17500)
    assert Quantity(674, "mW", "source", "x").to("W") == pytest.approx(0.674)
    with pytest.raises(RegistryError, match="cannot express"):
        Quantity(2.91, "GHz", "source", "x").to("ms")


def test_unknown_device_and_scenario_list_the_known_ones(registry: Registry) -> None:
    with pytest.raises(RegistryError) as info:
        registry.device("pixel7")
    message = str(info.value)
    assert message.startswith("unknown device 'pixel7'; known: galaxy-s24, host, ") and "\n" not in message
    assert all(name in message for name in DEVICES)
    with pytest.raises(RegistryError, match=r"^unknown scenario 'hdr'; known: photo, video"):
        registry.scenario("hdr")
    with pytest.raises(RegistryError, match=r"unknown backend of pixel8 'coreml'; known: executorch-vulkan"):
        registry.device("pixel8").backend("coreml")


# ----------------------------------------------------------------------------- validator failures

BASE = """
format = "seemore-mobile/devices/1"

[devices.phone]
name = "Test phone"
platform = "android"
soc = "Test SoC"

[[devices.phone.cpu.clusters]]
role = "prime"
core = "Cortex-X3"
count = { value = 1, unit = "cores", source = "test" }
max_clock = { value = 2.91, unit = "GHz", source = "test" }

[devices.phone.memory]
size = { value = 8, unit = "GB", source = "test" }
bandwidth = { value = 50, unit = "GB/s", assumed = "test" }

[devices.phone.units.cpu]
description = "test cores"
peak.int8 = { value = 413, unit = "GMAC/s", assumed = "test" }
active_power = { value = 4.3, unit = "W", assumed = "test" }

[devices.phone.backends.executorch-xnnpack]
unit = "cpu"
artifact = "pte"

[scenarios.video]
description = "test video"
per = "frame"
lr_height = { value = 180, unit = "px", source = "test" }
lr_width = { value = 320, unit = "px", source = "test" }
scale = { value = 4, unit = "x", source = "test" }
tile_height = { value = 180, unit = "px", source = "test" }
tile_width = { value = 320, unit = "px", source = "test" }
frame_rate = { value = 30, unit = "fps", assumed = "test" }

[scenarios.video.budget]
latency = { value = 33.3, unit = "ms", assumed = "test" }
energy = { value = 33, unit = "mJ", assumed = "test" }
power = { value = 1, unit = "W", assumed = "test" }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devices.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _variant(old: str, new: str) -> str:
    assert old in BASE, f"the mutation target {old!r} is not in the base document"
    return BASE.replace(old, new, 1)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(RegistryError) as info:
        load_registry(_write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_base_variant_loads(tmp_path: Path) -> None:
    registry = load_registry(_write(tmp_path, BASE))
    assert registry.device("phone").unit("cpu").peak_gmacs("int8") == 413
    assert registry.scenario("video").budget.latency.to("ms") == pytest.approx(33.3)
    assert registry.path == tmp_path / "devices.toml"


@pytest.mark.parametrize(("old", "new", "starts"), [
    # a number without provenance: in a table, and bare
    ('peak.int8 = { value = 413, unit = "GMAC/s", assumed = "test" }', 'peak.int8 = { value = 413, unit = "GMAC/s" }',
     "devices.phone.units.cpu.peak.int8: no source"),
    ('active_power = { value = 4.3, unit = "W", assumed = "test" }', "active_power = 4.3",
     "devices.phone.units.cpu.active_power: no source"),
    ('size = { value = 8, unit = "GB", source = "test" }',
     'size = { value = 8, unit = "GB", source = "a", assumed = "b" }',
     "devices.phone.memory.size: more than one provenance"),
    ('size = { value = 8, unit = "GB", source = "test" }', 'size = { value = 8, unit = "GB", source = "" }',
     "devices.phone.memory.size.source: must be a non-empty string"),
    # units
    ('bandwidth = { value = 50, unit = "GB/s"', 'bandwidth = { value = 50, unit = "furlongs"',
     "devices.phone.memory.bandwidth.unit: unknown unit 'furlongs'"),
    ('max_clock = { value = 2.91, unit = "GHz"', 'max_clock = { value = 2.91, unit = "ms"',
     "devices.phone.cpu.clusters[0].max_clock.unit: unknown unit 'ms' for frequency"),
    # measured on a phone
    ('peak.int8 = { value = 413, unit = "GMAC/s", assumed = "test" }',
     'peak.int8 = { value = 413, unit = "GMAC/s", measured = "ETDump" }',
     "devices.phone.units.cpu.peak.int8.measured: measured values are allowed on the host device only"),
    # values
    ('active_power = { value = 4.3,', 'active_power = { value = -4.3,',
     "devices.phone.units.cpu.active_power.value: must be positive"),
    ('count = { value = 1,', 'count = { value = 1.5,', "devices.phone.cpu.clusters[0].count.value: must be a whole"),
    # backends
    ('[devices.phone.backends.executorch-xnnpack]', '[devices.phone.backends.executorch-vulkan]\nunit = "gpu"\n'
     'artifact = "pte"\n\n[devices.phone.backends.executorch-xnnpack]',
     "devices.phone.backends.executorch-vulkan.unit: names compute unit 'gpu', which this device lacks"),
    ('[devices.phone.backends.executorch-xnnpack]', '[devices.phone.backends.coreml]\nunit = "cpu"\n'
     'artifact = "mlpackage"\n\n[devices.phone.backends.executorch-xnnpack]',
     "devices.phone.backends.coreml: coreml does not run on android"),
    ('unit = "cpu"\nartifact = "pte"', 'unit = "cpu"\nartifact = "tflite"',
     "devices.phone.backends.executorch-xnnpack.artifact: executorch-xnnpack consumes 'pte' artifacts"),
    ('[devices.phone.backends.executorch-xnnpack]', '[devices.phone.backends.qnn]\nunit = "cpu"\n'
     'artifact = "pte"\n\n[devices.phone.backends.executorch-xnnpack]', "devices.phone.backends.qnn: unknown backend"),
    # keys
    ('soc = "Test SoC"', 'soc = "Test SoC"\nsock = "typo"', "devices.phone.sock: unknown key"),
    ('soc = "Test SoC"\n', '', "devices.phone.soc: missing"),
    ('platform = "android"', 'platform = "symbian"', "devices.phone.platform: must be one of android, ios, linux"),
    ('[devices.phone.units.cpu]', '[devices.phone.units.ane]\ndescription = "x"\n'
     'peak.fp16 = { value = 1, unit = "GMAC/s", assumed = "x" }\n'
     'active_power = { value = 1, unit = "W", assumed = "x" }\n\n[devices.phone.units.cpu]',
     "devices.phone.units.ane: unknown key"),
    ('peak.int8', 'peak.int4', "devices.phone.units.cpu.peak.int4: unknown key"),
    # scenarios
    ('latency = { value = 33.3, unit = "ms"', 'latency = { value = 40, unit = "ms"',
     "scenarios.video.budget.latency: 40 ms exceeds the frame period at 30 fps"),
    ('frame_rate = { value = 30, unit = "fps", assumed = "test" }\n', '',
     "scenarios.video.frame_rate: missing"),
    ('power = { value = 1, unit = "W", assumed = "test" }', 'power = { value = 1, unit = "J", assumed = "test" }',
     "scenarios.video.budget.power.unit: unknown unit 'J' for power"),
    ('format = "seemore-mobile/devices/1"', 'format = "seemore-mobile/devices/0"', "format: must be"),
    # anchor-only devices
    ('soc = "Test SoC"', 'soc = "Test SoC"\nanchor_only = "yes"', "devices.phone.anchor_only: must be true or false"),
    ('soc = "Test SoC"', 'soc = "Test SoC"\nanchor_only = true',
     "devices: needs at least one device that is not anchor-only"),
])
def test_validator_names_the_key(tmp_path: Path, old: str, new: str, starts: str) -> None:
    message = _error(tmp_path, _variant(old, new))
    assert message.startswith(starts), message


def test_measured_is_allowed_on_the_host(tmp_path: Path) -> None:
    text = _variant('peak.int8 = { value = 413, unit = "GMAC/s", assumed = "test" }',
                    'peak.int8 = { value = 413, unit = "GMAC/s", measured = "ETDump" }').replace("phone", HOST_DEVICE)
    assert load_registry(_write(tmp_path, text)).device(HOST_DEVICE).unit("cpu").peak["int8"].provenance == "measured"


def test_anchor_only_variant(tmp_path: Path) -> None:
    second = BASE.split("[scenarios.video]")[0].split("[devices.phone]")[1].replace("devices.phone", "devices.old")
    text = BASE.replace("[scenarios.video]", "[devices.old]" + second.replace(
        'soc = "Test SoC"', 'soc = "Test SoC"\nanchor_only = true', 1) + "[scenarios.video]", 1)
    registry = load_registry(_write(tmp_path, text))
    assert list(registry.devices) == ["phone"] and list(registry.anchor_devices) == ["old"]
    assert registry.any_device("old").anchor_only and not registry.device("phone").anchor_only
    host = _variant('soc = "Test SoC"', 'soc = "Test SoC"\nanchor_only = true').replace("phone", HOST_DEVICE)
    host = host.replace("[scenarios.video]", "[devices.phone]" + second.replace("devices.old", "devices.phone")
                        + "[scenarios.video]", 1)
    assert _error(tmp_path, host).startswith(f"devices.{HOST_DEVICE}.anchor_only: the {HOST_DEVICE} device cannot")


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    assert "not valid TOML" in _error(tmp_path, BASE + "\n[devices.phone\n")
    with pytest.raises(RegistryError, match="cannot read the device registry") as info:
        load_registry(tmp_path / "absent.toml")
    assert "\n" not in str(info.value)


def test_unknown_device_in_a_variant(tmp_path: Path) -> None:
    registry = load_registry(_write(tmp_path, BASE))
    with pytest.raises(RegistryError) as info:
        registry.device("pixel7")
    assert str(info.value) == "unknown device 'pixel7'; known: phone"
