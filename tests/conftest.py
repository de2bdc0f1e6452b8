"""Helpers shared by the test modules."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per worker when the suite runs in parallel (``pytest -n``): the workers
    already use every core, and torch's default of one thread per core would have each worker's
    OpenMP threads wait for descheduled siblings."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say plainly when the Android app's Kotlin logic could not be compiled and run (no kotlinc)."""
    from seemore.apps.jvm import KOTLINC_HINT, jvm_tools

    if jvm_tools() is None:
        terminalreporter.write_line(f"NOTE: the Android app's Kotlin logic tests did NOT run: {KOTLINC_HINT}; "
                                    "install it and run the tests again", yellow=True, bold=True)


def load_script(relative_path: str) -> ModuleType:
    """Import a CLI script of the repository (e.g. ``mobile/parity.py``) as a module."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem + "_cli", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_model(seed: int = 0, output_in_image_range: bool = False) -> torch.nn.Module:
    """A 1-group SeemoRe-T x4 with seeded random weights (eval mode).

    ``output_in_image_range`` shrinks the upsampler so that the output stays near [0, 1] like a
    trained model's: a random upsampler maps features far outside it, which makes the INT8
    output grid coarse enough that one-step rounding differences alone sink a 45 dB parity
    bound that a trained model meets.
    """
    from seemore import create_model

    torch.manual_seed(seed)
    model = create_model("seemore_t", 4, num_layers=1).eval()
    if output_in_image_range:
        with torch.no_grad():
            model.upsampler[0].weight.mul_(0.05)
            model.upsampler[0].bias.zero_()
    return model


def saved_small_model(folder: Path, seed: int = 0, output_in_image_range: bool = False) -> tuple[torch.nn.Module, Path]:
    """:func:`small_model` and the safetensors checkpoint it was saved to in ``folder``."""
    from seemore import save_model

    model = small_model(seed, output_in_image_range)
    ckpt = folder / "tiny_t_x4.safetensors"
    save_model(model, ckpt)
    return model, ckpt


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a whole module: on shared, busy cores, multi-threaded ops wait for
    descheduled workers, so one thread is faster (use with ``pytest.mark.usefixtures``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def exit_code(main: "object", argv: list[str]) -> int:
    """A CLI ``main(argv)``'s exit status, whether it returns it or argparse exits with it."""
    try:
        return int(main(argv))  # type: ignore[operator]
    except SystemExit as exc:
        return int(exc.code or 0)


def toml_number_leaves(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Every number leaf of a raw TOML document and the table holding it (``None``: a bare list item)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield f"{path}.{key}", node
            else:
                yield from toml_number_leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield f"{path}[{i}]", None
            else:
                yield from toml_number_leaves(value, f"{path}[{i}]")


def assert_apps_read_every_contract(folder: Path) -> None:
    """Every runtime contract an exporter wrote under ``folder`` has the keys the demo apps read,
    and its tiling is the one the apps compute (:mod:`seemore.apps.rules`)."""
    import json

    from seemore.apps.rules import AppTiling, missing_contract_keys

    contracts = [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))]
    runtime = [c for c in contracts if c.get("format") == "seemore-mobile/contract" and c.get("kind") == "runtime"]
    assert runtime, f"no runtime contract under {folder}"
    for contract in runtime:
        assert missing_contract_keys(contract) == [], contract["artifact"]["path"]
        tiling = AppTiling.from_contract(contract)
        assert [tiling.tile_h, tiling.tile_w] == [contract["spec"]["height"], contract["spec"]["width"]]
