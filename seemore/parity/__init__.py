"""The parity harness: every artifact in its own runtime against its PyTorch reference.

* :mod:`seemore.parity.bounds` - bounds per (backend, precision), as data with their reasons
* :mod:`seemore.parity.harness` - discovery through contracts, runners, references, comparison
* :mod:`seemore.parity.report` - the table ``python mobile/parity.py`` prints
"""

from seemore.parity.bounds import AT_FLOOR, BOUNDS, FAIL, PASS, BoundError, ParityBound, bound_for, judge
from seemore.parity.harness import (
    DEFAULT_ROOT,
    DEFAULT_SETS,
    Harness,
    ParityError,
    ParityResult,
    compare_outputs,
    io_adapter,
    results_json,
    run_parity,
    structure_problems,
    write_back,
)
from seemore.parity.report import format_results

__all__ = [
    "AT_FLOOR",
    "BOUNDS",
    "DEFAULT_ROOT",
    "DEFAULT_SETS",
    "FAIL",
    "PASS",
    "BoundError",
    "Harness",
    "ParityBound",
    "ParityError",
    "ParityResult",
    "bound_for",
    "compare_outputs",
    "format_results",
    "io_adapter",
    "judge",
    "results_json",
    "run_parity",
    "structure_problems",
    "write_back",
]
