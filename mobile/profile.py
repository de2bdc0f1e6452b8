"""Does SeemoRe fit a phone's latency and power budget, on which backend, at which size?

    python mobile/profile.py --device pixel8
    python mobile/profile.py --device iphone15pro --scenario video --json profile.json
    python mobile/profile.py --validate

Estimates every backend of the device (mobile/devices.toml) from the exported artifacts under
``--root``, per scenario (photo, video) against its budget, and writes a Markdown report with
PNG charts. A thin CLI over :mod:`seemore.profiling` (``seemore-profile``).
"""

import sys
from pathlib import Path

# This file's name is the standard library's `profile`: keep its folder off the import path, so
# that `import profile` (cProfile does it) finds the library module, not this script.
_here = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if (str(Path(p).resolve()) if p else p) != _here]

from seemore.profiling.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
