"""The Android demo app, as far as Linux can check it.

* the plain-Kotlin logic compiled with ``kotlinc`` and run on the JVM against golden tile plans,
  packed tiles and stitched pixels written by the Python reference (:mod:`seemore.apps.golden`),
  and against contracts of every kind the exporters write (skipped, and said so in the run's
  summary, when ``kotlinc`` is missing);
* every Kotlin file parsed with tree-sitter, no Android import in the logic source set, the
  contract keys the app reads equal to :data:`seemore.apps.rules.CONTRACT_KEYS`;
* the Gradle build consistent (versions pinned, ExecuTorch at the Python version, every source
  file compiled), and the Xcode project of the iOS app likewise.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest

from seemore.apps import golden
from seemore.apps.gradle import android_project_problems, catalog_problems
from seemore.apps.jvm import KOTLINC_HINT, build_logic_check, jvm_tools, run_logic_check
from seemore.apps.rules import CONTRACT_KEYS, AppTiling
from seemore.apps.sources import (
    ANDROID_APP,
    CONTRACT_READERS,
    IOS_APP,
    KOTLIN_LOGIC,
    app_sources,
    kotlin_imports,
    kotlin_literal_calls,
    parse,
    syntax_errors,
)
from seemore.apps.xcode import load_project, project_problems
from seemore.config import get_config
from seemore.contract import ExportSpec
from seemore.contract.schema import ArtifactContract, FileRecord, io_records
from seemore.contract.store import source_record
from seemore.tiling import tiling_rule

EXECUTORCH = importlib.metadata.version("executorch")
needs_jvm = pytest.mark.skipif(jvm_tools() is None, reason=f"Kotlin app logic not run: {KOTLINC_HINT}")


@pytest.fixture(scope="module")
def logic_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_logic_check(tmp_path_factory.mktemp("kotlin") / "logic-check.jar")


@needs_jvm
def test_kotlin_logic_reproduces_the_golden_plans_tiles_and_pixels(logic_jar: Path, tmp_path: Path) -> None:
    index = golden.write_goldens(tmp_path / "golden")
    result = run_logic_check(logic_jar, "golden", str(index.parent))
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[:2] for line in lines] == [["ok", case.name] for case in golden.CASES]


@needs_jvm
@pytest.mark.parametrize("buffer, item", [("output_rgb", 1), ("output_f32", 4)])
def test_kotlin_logic_catches_a_wrong_golden_value(logic_jar: Path, tmp_path: Path, buffer: str, item: int) -> None:
    # The checker can fail: one output byte, or the last bit of one stitched float (which the
    # rounded bytes would hide), changed in one case is reported, and only that case.
    index = golden.write_goldens(tmp_path / "golden", golden.CASES[:2])
    entry = json.loads(index.read_text())["cases"][1]
    output = index.parent / entry["files"][buffer]
    data = bytearray(output.read_bytes())
    data[len(data) // item // 2 * item] ^= 0x01
    output.write_bytes(bytes(data))
    result = run_logic_check(logic_jar, "golden", str(index.parent))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"ok {golden.CASES[0].name}")
    assert lines[1].startswith(f"FAIL {golden.CASES[1].name}")


def _contract(folder: Path, spec: ExportSpec) -> Path:
    """A contract as the exporters write it (same record builders as seemore.export.driver)."""
    name = f"m_{spec.tag}{'.mlpackage' if spec.runtime == 'coreml' else '.pte' if spec.runtime == 'executorch' else '.tflite'}"
    inputs, outputs = io_records(spec)
    contract = ArtifactContract(
        kind="runtime", spec=spec, artifact=FileRecord(name, "file", 1, "0" * 64), inputs=inputs, outputs=outputs,
        tiling=tiling_rule(spec.height, spec.width), source=source_record(None, get_config("seemore_t", 4), folder))
    path = folder / f"{name}.json"
    path.write_text(contract.to_json())
    return path


SPECS = (
    ExportSpec("xnnpack", "fp32", 180, 320), ExportSpec("xnnpack", "int8", 64, 96, layout="NHWC"),
    ExportSpec("vulkan", "fp16", 180, 320), ExportSpec("coreml", "fp16", 96, 160),
    ExportSpec("coreml", "fp16", 96, 160, io="image"), ExportSpec("litert", "int8", 48, 64, layout="NHWC"),
)


@needs_jvm
def test_kotlin_contract_reader_reads_every_exporters_contract(logic_jar: Path, tmp_path: Path) -> None:
    paths = [_contract(tmp_path, spec) for spec in SPECS]
    result = run_logic_check(logic_jar, "contract", *map(str, paths))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    for spec, path, row in zip(SPECS, paths, rows):
        doc = json.loads(path.read_text())
        tiling = AppTiling.from_contract(doc)
        assert row == {"file": path.name, "model": "seemore_t_x4", "backend": spec.backend, "runtime": spec.runtime,
                       "precision": spec.precision, "layout": spec.layout, "scale": spec.scale,
                       "tile": [tiling.tile_h, tiling.tile_w], "overlap": tiling.overlap,
                       "input": doc["inputs"][0]["name"], "output": doc["outputs"][0]["name"],
                       "artifact": doc["artifact"]["path"]}


@needs_jvm
@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="seemore-mobile/artifact/1"), "seemore-mobile/contract"),
    (lambda d: d["tiling"].pop("overlap"), "tiling.overlap"),
    (lambda d: d["tiling"].update(overlap=3), "overlap"),
    (lambda d: d["inputs"][0].update(shape=[1, 3, 10, 10]), "shape"),
])
def test_kotlin_contract_reader_refuses_a_bad_contract_in_one_line(
        logic_jar: Path, tmp_path: Path, change: Any, message: str) -> None:
    path = _contract(tmp_path, SPECS[0])
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    result = run_logic_check(logic_jar, "contract", str(path))
    assert result.returncode == 1
    [line] = result.stdout.strip().splitlines()
    assert line.startswith(f"error {path}:") and message in line


def test_every_kotlin_file_parses() -> None:
    files = app_sources(ANDROID_APP, ".kt")
    assert len(files) >= 10
    for path in files:
        assert syntax_errors(parse(path)) == [], path


def test_kotlin_logic_has_no_android_imports() -> None:
    for path in app_sources(KOTLIN_LOGIC, ".kt"):
        for name in kotlin_imports(parse(path)):
            assert not name.startswith(("android.", "androidx.", "org.pytorch.")), f"{path.name} imports {name}"


def test_kotlin_contract_reader_asks_for_exactly_the_contract_keys() -> None:
    [contract] = [p for p in app_sources(KOTLIN_LOGIC, ".kt") if p.name == "Contract.kt"]
    calls = kotlin_literal_calls(parse(contract), "json", CONTRACT_READERS)
    assert all(key is not None for _, key in calls), calls  # every key one plain literal
    assert sorted({key for _, key in calls}) == sorted(CONTRACT_KEYS)
    others = [p for p in app_sources(ANDROID_APP, ".kt") if p != contract]
    assert not any(kotlin_literal_calls(parse(p), "json", CONTRACT_READERS) for p in others)


def test_gradle_build_is_pinned_and_consistent() -> None:
    assert android_project_problems(ANDROID_APP, EXECUTORCH) == []


def test_gradle_checks_can_fail() -> None:
    catalog = {"versions": {"executorch": "1.4.0", "agp": "8.+"},
               "libraries": {"executorch-android": {"group": "org.pytorch", "name": "executorch-android",
                                                    "version": {"ref": "executorch"}},
                             "stray": {"group": "com.example", "name": "x"}}}
    problems = catalog_problems(catalog, "1.5.1")
    assert any("agp" in p for p in problems) and any("1.4.0" in p for p in problems)
    assert any("stray" in p for p in problems) and any("executorch-android-vulkan" in p for p in problems)


def test_xcode_project_is_consistent() -> None:
    project = load_project(IOS_APP / "SeemoreDemo.xcodeproj")
    assert project_problems(project, "SeemoreDemo", EXECUTORCH) == []


def test_xcode_checks_can_fail(tmp_path: Path) -> None:
    project = load_project(IOS_APP / "SeemoreDemo.xcodeproj")
    (tmp_path / "SeemoreDemo" / "Logic").mkdir(parents=True)
    moved = type(project)(project.root, tmp_path)
    (tmp_path / "SeemoreDemo" / "Logic" / "Extra.swift").write_text("import Foundation\n")
    problems = project_problems(moved, "SeemoreDemo", "9.9.9")
    assert any("Extra.swift is on disk but not in the Sources phase" in p for p in problems)
    assert any("swiftpm-9.9.9" in p for p in problems)
    assert any("does not exist" in p for p in problems)
