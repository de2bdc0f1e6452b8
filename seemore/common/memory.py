"""This process's resident memory: now, and its peak (for memory benchmarks and calibrations)."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_rss_bytes() -> int:
    """This process's peak resident memory since it started or since :func:`reset_peak_rss`.

    Linux: ``VmHWM``, not ``getrusage``'s ``ru_maxrss``, which Linux carries across ``execve``: a
    process started by a 2 GB parent (pytest) reports at least 2 GB whatever it does. Elsewhere
    ``ru_maxrss`` (bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss() -> None:
    """Start the Linux peak (VmHWM) again from the current RSS (``5`` into ``/proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # then the peak counts from the process start, which a caller measures first
