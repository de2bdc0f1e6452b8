"""Check every exported artifact against PyTorch in its own runtime, and print one table.

    python mobile/parity.py                         # every artifact under artifacts/
    python mobile/parity.py --root /tmp/pte --json runs/parity.json
    python mobile/parity.py --sets Set5 --no-write

Artifacts are found by their contracts (``<artifact>.json``). Float artifacts are compared with
eager PyTorch, INT8 ones with the fake-quantized program they were lowered from, each under the
bound of its backend and precision; an unreadable contract or a changed file is a failed row.
Exit status 1 when anything fails. A thin CLI over :mod:`seemore.parity` (``seemore-parity``).
"""

from seemore.parity.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
