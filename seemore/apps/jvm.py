"""Compile and run the Android app's plain-Kotlin logic on the JVM (Debian's ``kotlinc`` and a JDK).

The logic source set (``android_demo/app/src/logic/kotlin``) and its checker
(``android_demo/app/src/logicCheck/kotlin``, ``LogicCheck.kt``) are compiled into one jar; the
checker then recomputes the golden files of :mod:`seemore.apps.golden` and parses contracts
with the app's own reader. Nothing here needs the Android SDK.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from seemore.apps.sources import KOTLIN_LOGIC, KOTLIN_LOGIC_CHECK

KOTLINC_HINT = "kotlinc not found (Debian/Ubuntu: apt-get install kotlin)"


class JvmError(RuntimeError):
    """kotlinc or java failed; the message carries their first lines of output."""


def jvm_tools() -> tuple[str, str] | None:
    """Paths of ``kotlinc`` and ``java``, or None when either is missing."""
    kotlinc, java = shutil.which("kotlinc"), shutil.which("java")
    return (kotlinc, java) if kotlinc and java else None


def build_logic_check(jar: Path, timeout_s: float = 600) -> Path:
    """Compile the logic source set and its checker into ``jar`` (with the Kotlin runtime)."""
    tools = jvm_tools()
    if tools is None:
        raise JvmError(KOTLINC_HINT)
    jar.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([tools[0], str(KOTLIN_LOGIC), str(KOTLIN_LOGIC_CHECK), "-include-runtime", "-d", str(jar)],
                            capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0 or not jar.is_file():
        raise JvmError("kotlinc failed: " + " | ".join((result.stderr or result.stdout).strip().splitlines()[:8]))
    return jar


def run_logic_check(jar: Path, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``LogicCheck`` with ``args`` (``golden <dir>`` or ``contract <file>...``)."""
    tools = jvm_tools()
    if tools is None:
        raise JvmError(KOTLINC_HINT)
    return subprocess.run([tools[1], "-jar", str(jar), *args], capture_output=True, text=True, timeout=timeout_s)
