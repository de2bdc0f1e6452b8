"""The artifact contract (round trip, validator), directory hashing, atomic writes, the fixed-tile plan."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seemore import get_config
from seemore.common.files import STALE_TMP_SECONDS, atomic_write_bytes, atomic_write_dir, path_sha256, tree_sha256
from seemore.contract import (
    ArtifactContract,
    ContractError,
    ExportSpec,
    QuantizationRecord,
    SpecError,
    contract_path,
    discover,
    file_record,
    io_records,
    read_contract,
    source_record,
    write_contract,
)
from seemore.tiling import mirror_pad, plan_axis, run_fixed_tiles, tiling_rule


def make_contract(folder: Path, precision: str = "fp32", directory: bool = False) -> tuple[ArtifactContract, Path]:
    spec = ExportSpec("xnnpack", precision, 32, 48)
    if directory:
        artifact = folder / "model.mlpackage"
        (artifact / "Data").mkdir(parents=True)
        (artifact / "Data" / "weights.bin").write_bytes(b"\1\2\3")
        (artifact / "Manifest.json").write_text("{}")
    else:
        artifact = folder / "model.pte"
        artifact.write_bytes(b"program bytes")
    ckpt = folder / "weights.safetensors"
    ckpt.write_bytes(b"not really weights")
    inputs, outputs = io_records(spec)
    quant = None
    if precision == "int8":
        program = folder / "model.pt2"
        program.write_bytes(b"a program")
        quant = QuantizationRecord("qat", "xnnpack", "int8", ["Router"], file_record(program, folder),
                                   "int32-bias-grid", {"steps": 3})
    contract = ArtifactContract(
        kind="runtime", spec=spec, artifact=file_record(artifact, folder), inputs=inputs, outputs=outputs,
        tiling=tiling_rule(32, 48), source=source_record(ckpt, get_config("seemore_t", 4), folder),
        quantization=quant, structure={"partitions": 1, "ops_outside": 0}, export_check={"psnr_db": float("inf")},
    )
    return contract, artifact


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_contract_round_trip(tmp_path: Path, precision: str) -> None:
    contract, artifact = make_contract(tmp_path, precision)
    path = write_contract(contract, contract_path(artifact))
    assert path.name == "model.pte.json"
    back = read_contract(path)
    assert back.to_dict() == ArtifactContract.from_json(contract.to_json()).to_dict()
    assert back.spec == contract.spec and back.source.checkpoint == "weights.safetensors"
    assert back.export_check["psnr_db"] == "inf", "JSON has no infinity: written as a string"
    assert back.version == 3 and back.format == "seemore-mobile/contract"
    assert (back.quantization is not None) == (precision == "int8")
    if back.quantization is not None:
        assert back.quantization.program.path == "model.pt2"
    assert str(tmp_path) not in path.read_text()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(kind="model"), "kind must be one of"),
        (lambda d: d.update(extra=1), "unknown fields extra"),
        (lambda d: d.pop("tiling"), "missing fields tiling"),
        (lambda d: d["artifact"].update(path="/tmp/model.pte"), "relative"),
        (lambda d: d["artifact"].update(path="C:\\model.pte"), "relative"),
        (lambda d: d["artifact"].update(sha256="abc"), "hex SHA-256"),
        (lambda d: d["artifact"].update(kind="link"), "file or directory"),
        (lambda d: d["spec"].update(height=0), "height must be a positive integer"),
        (lambda d: d["spec"].update(precision="int4"), "unknown precision"),
        (lambda d: d["spec"].update(colour="rgb"), "unknown fields colour"),
        (lambda d: d["outputs"][0].update(shape=[1, 3, 32, 48]), "does not follow from the spec"),
        (lambda d: d["tiling"].update(tile=[16, 16]), "tiling.tile"),
        (lambda d: d["source"].update(checkpoint="/home/me/w.safetensors"), "relative"),
        (lambda d: d.update(format="seemore-mobile/artifact/1"), "old sidecar"),
        (lambda d: d.update(parity=[]), "parity must be an object"),
        (lambda d: d["spec"].update(precision="int8"), "needs a quantization record"),
        (lambda d: d.update(inputs="lr"), "must be lists"),
    ],
)
def test_validator_names_what_is_wrong(tmp_path: Path, edit: object, message: str) -> None:
    contract, _ = make_contract(tmp_path)
    data = json.loads(contract.to_json())
    edit(data)  # type: ignore[operator]
    with pytest.raises(ContractError, match=message.replace("(", r"\(")):
        ArtifactContract.from_dict(data)
    with pytest.raises(ContractError, match="not valid JSON"):
        ArtifactContract.from_json("{ nope")


def test_directory_artifacts_are_hashed_as_trees(tmp_path: Path) -> None:
    contract, artifact = make_contract(tmp_path / "a", directory=True)
    assert contract.artifact.kind == "directory" and contract.artifact.bytes == 5
    before = tree_sha256(artifact)
    # The same tree elsewhere hashes the same; any change to a name or a byte changes it.
    copy = tmp_path / "b" / "elsewhere.mlpackage"
    (copy / "Data").mkdir(parents=True)
    (copy / "Data" / "weights.bin").write_bytes(b"\1\2\3")
    (copy / "Manifest.json").write_text("{}")
    assert tree_sha256(copy) == before == path_sha256(artifact)
    (copy / "Data" / "weights.bin").write_bytes(b"\1\2\4")
    assert tree_sha256(copy) != before
    (copy / "Data" / "weights.bin").write_bytes(b"\1\2\3")
    (copy / "Data" / "weights.bin").rename(copy / "Data" / "weights2.bin")
    assert tree_sha256(copy) != before
    write_contract(contract, contract_path(artifact))
    [found] = discover(tmp_path / "a")
    assert found.contract is not None and found.name == "model.mlpackage"


def test_atomic_directory_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "model.mlpackage"

    def fill(version: bytes) -> object:
        return lambda d: (d / "weights.bin").write_bytes(version)

    atomic_write_dir(target, fill(b"v1"))
    assert (target / "weights.bin").read_bytes() == b"v1"

    def broken(d: Path) -> None:
        (d / "weights.bin").write_bytes(b"half")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError):
        atomic_write_dir(target, broken)
    assert (target / "weights.bin").read_bytes() == b"v1"
    atomic_write_dir(target, fill(b"v2"))
    assert (target / "weights.bin").read_bytes() == b"v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.mlpackage"], "no temporaries left"


def test_stale_temporaries_of_a_killed_write_are_cleaned(tmp_path: Path) -> None:
    target = tmp_path / "model.pte"
    stale, fresh = tmp_path / ".model.pte.abc123.tmp", tmp_path / ".model.pte.def456.tmp"
    stale.write_bytes(b"half a file")
    fresh.write_bytes(b"another writer, still busy")
    old = time.time() - STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole" and not stale.exists() and fresh.exists()


def test_fixed_tile_plan_reassembles_exactly() -> None:
    # A per-pixel "model" (nearest x4) must come back unchanged through padding, tiling and blending.
    upscale = lambda x: F.interpolate(x, scale_factor=4, mode="nearest")  # noqa: E731
    torch.manual_seed(0)
    for h, w in [(20, 30), (57, 86), (128, 128), (32, 48), (33, 200)]:
        img = torch.rand(1, 3, h, w)
        got = run_fixed_tiles(upscale, img, 32, 48, 4)
        assert torch.allclose(got, upscale(img), atol=1e-6)
    spans = plan_axis(128, 32, 8, 1, exact=True)
    assert all(s.stop - s.start == 32 for s in spans), "every window has the artifact's fixed size"
    assert spans[0].core_start == 0 and spans[-1].core_stop == 128 and spans[-1].start == 96
    assert all(a.core_stop == b.core_start for a, b in zip(spans, spans[1:]))
    assert plan_axis(20, 32, 8, 1, exact=True)[0].stop == 32, "a small image is one padded window"
    padded = mirror_pad(torch.arange(3.0).view(1, 1, 1, 3), 1, 8)
    assert padded.flatten().tolist() == [0, 1, 2, 2, 1, 0, 0, 1]
    rule = tiling_rule(180, 320)
    assert rule["tile"] == [180, 320] and rule["overlap"] == 16 and "cross-fade" in rule["blend"]


def test_core_ml_spec_variants_validate_tag_and_round_trip() -> None:
    spec = ExportSpec("coreml", "fp16", 180, 320, compression="w8", sizes=((180, 320), (360, 640)),
                      deployment_target="iOS18")
    assert spec.runtime == "coreml" and spec.tag == "coreml_fp16_w8_180x320_enum2_ios18"
    assert ExportSpec.from_dict(spec.to_dict()) == spec
    assert ExportSpec("coreml", "fp16", io="image").tag == "coreml_fp16_180x320_image"
    assert ExportSpec("coreml", "fp16").deployment_target == "iOS17"
    assert ExportSpec("xnnpack", "fp32").deployment_target == ""
    bad = [
        (dict(backend="xnnpack", compression="w8"), "not available for xnnpack"),
        (dict(backend="coreml", precision="int8", compression="w8"), "applies to fp16"),
        (dict(backend="coreml", precision="fp16", compression="lut4"), "choose from w8, lut6"),
        (dict(backend="xnnpack", io="image"), "io 'image' is not available"),
        (dict(backend="coreml", precision="fp16", io="image", layout="NHWC"), "image I/O takes no layout"),
        (dict(backend="coreml", precision="fp16", deployment_target="iOS16"), "choose from iOS17, iOS18"),
        (dict(backend="xnnpack", sizes=((180, 320),)), "Core ML feature"),
        (dict(backend="coreml", precision="fp16", sizes=((90, 160), (180, 320))), "must be the default"),
        (dict(backend="coreml", precision="fp16", sizes=((180, 320), (180, 320))), "repeat"),
        (dict(backend="coreml", precision="fp16", sizes=((180, 320), (1080, 1920))), "within 1023 px"),
    ]
    for fields, message in bad:
        with pytest.raises(SpecError, match=message):
            ExportSpec(**fields)
