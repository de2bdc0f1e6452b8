"""Does SeemoRe fit a phone's latency and power budget, on which backend, at which size?

    python mobile/profile.py --device pixel8
    python mobile/profile.py --device iphone15pro --scenario video --json profile.json
    python mobile/profile.py --validate

Estimates every backend of the device (mobile/devices.toml) from the exported artifacts under
``--root``, per scenario (photo, video) against its budget (measured on an attached phone when
there is one), and writes a Markdown report with PNG charts. A thin CLI over
:mod:`seemore.profiling` (``seemore-profile``).

This file's name is the standard library's ``profile``. When another script of this folder runs,
the folder is first on ``sys.path`` and ``import profile`` (``cProfile`` does it) finds this file:
imported under that name, it puts the standard library's module in its place.
"""

import sys
from pathlib import Path

if __name__ != "__main__":
    import importlib.util
    import sysconfig

    _spec = importlib.util.spec_from_file_location(__name__, Path(sysconfig.get_paths()["stdlib"]) / "profile.py")
    assert _spec is not None and _spec.loader is not None
    _stdlib = importlib.util.module_from_spec(_spec)
    sys.modules[__name__] = _stdlib  # what the importing statement binds
    _spec.loader.exec_module(_stdlib)
else:
    # Run as the script: keep this folder off the import path, so that `import profile` below
    # it finds the standard library's module.
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if (str(Path(p).resolve()) if p else p) != _here]

    from seemore.profiling.cli import main

    raise SystemExit(main())
