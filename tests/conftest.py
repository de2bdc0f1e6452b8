"""Helpers shared by the test modules."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def load_script(relative_path: str) -> ModuleType:
    """Import a CLI script of the repository (e.g. ``mobile/parity.py``) as a module."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem + "_cli", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a whole module: on shared, busy cores, multi-threaded ops wait for
    descheduled workers, so one thread is faster (use with ``pytest.mark.usefixtures``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
