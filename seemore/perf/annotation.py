"""CoreMLQuantizer's annotation with and without this project's shortcuts (``benchmarks/coreml_annotation.py``).

:func:`seemore.quantize.quantizers.backend_quantizer` wraps ExecuTorch's ``CoreMLQuantizer`` so
that each match pattern is built once and unmatchable patterns are skipped. This runs
``prepare_pt2e`` on the same capture both ways, in one process, and reports the wall time,
how many patterns were exported with ``torch.export``, and whether the prepared programs are
identical (their generated code, observers included, character for character).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class AnnotationRun:
    """One ``prepare_pt2e``: which way, its wall time and pattern exports."""

    shortcuts: bool
    is_qat: bool
    seconds: float
    pattern_exports: int


@contextlib.contextmanager
def _counting_pattern_exports() -> Iterator[list[int]]:
    """Count the patterns CoreMLQuantizer exports (its ``_get_aten_graph_module``)."""
    import executorch.backends.apple.coreml.quantizer._coreml_quantizer_utils as utils

    original = utils._get_aten_graph_module
    count = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    utils._get_aten_graph_module = counted
    try:
        yield count
    finally:
        utils._get_aten_graph_module = original


def compare_coreml_annotation(captured: torch.fx.GraphModule, is_qat: bool = False,
                              report: Callable[[str], None] = lambda _: None) -> tuple[list[AnnotationRun], bool]:
    """``prepare_pt2e`` (or ``prepare_qat_pt2e``) of copies of ``captured`` with shortcuts, without, with again.

    The first run with shortcuts pays for building its patterns, the second shows the warm cost;
    the stock run builds every pattern at every try. Returns the runs and whether all three
    prepared programs have the same code.
    """
    import seemore.quantize.quantizers as quantizers
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    prepare = prepare_qat_pt2e if is_qat else prepare_pt2e
    runs: list[AnnotationRun] = []
    codes: set[str] = set()
    shortcuts = quantizers._coreml_annotation_shortcuts
    try:
        for with_shortcuts in (True, False, True):
            quantizers._coreml_annotation_shortcuts = (
                shortcuts if with_shortcuts else (lambda model: contextlib.nullcontext()))  # type: ignore[assignment]
            report(f"prepare {'with' if with_shortcuts else 'without'} shortcuts ...")
            quantizer = quantizers.backend_quantizer("coreml", is_qat=is_qat)
            model = copy.deepcopy(captured)
            with _counting_pattern_exports() as count:
                start = time.perf_counter()
                prepared = prepare(model, quantizer)
                seconds = time.perf_counter() - start
            runs.append(AnnotationRun(with_shortcuts, is_qat, seconds, count[0]))
            codes.add(prepared.code)
    finally:
        quantizers._coreml_annotation_shortcuts = shortcuts  # type: ignore[assignment]
    return runs, len(codes) == 1


def runs_to_json(runs: list[AnnotationRun]) -> list[dict[str, Any]]:
    """The runs as JSON-ready dicts."""
    return [asdict(r) for r in runs]
