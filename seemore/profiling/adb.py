"""A small wrapper of the ``adb`` binary: pick the phone, run shell commands, push, pull.

Every call is ``subprocess.run`` with an argument list (never a host shell string) and a
timeout. Whatever goes wrong - adb missing, no phone, several phones, an unauthorized or
offline one, a command that exits non-zero or runs past its timeout - is one :class:`AdbError`
whose message is one line naming the command and its last line of error output.

The remote side does go through the phone's ``sh``: adb joins the words after ``shell`` with
spaces, so :meth:`Adb.shell` quotes each word first and a path with a space stays one word.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ADB_NOT_FOUND = "adb not found on PATH; install Android platform-tools or pass --adb PATH"
DEFAULT_TIMEOUT_S = 60.0
# The shell prints these for a child killed by a signal; the exit status already says so.
_SIGNAL_NOTICES = re.compile(r"^(Aborted|Segmentation fault|Killed|Bus error|Illegal instruction|Terminated)\b")
_PROPERTY = re.compile(r"^[A-Za-z0-9_.\-]+$")


class AdbError(RuntimeError):
    """adb could not do what was asked; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class Device:
    """One line of ``adb devices -l``: serial, state (``device``, ``unauthorized``, ``offline``, ...)
    and the ``key:value`` details (``model``, ``device``, ``product``, ``transport_id``, ``usb``)."""

    serial: str
    state: str
    details: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        """The ``model:`` detail with adb's underscores turned back into spaces (``Pixel 8``)."""
        model = self.details.get("model")
        return model.replace("_", " ") if model else None


@dataclass(frozen=True)
class ShellResult:
    """What a remote command printed and its exit status."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout then stderr: the runners log to stderr (ExecuTorch's ET_LOG, TFLite's logger)."""
        if self.stdout and self.stderr and not self.stdout.endswith("\n"):
            return self.stdout + "\n" + self.stderr
        return self.stdout + self.stderr


def parse_devices(text: str) -> list[Device]:
    """Devices from ``adb devices -l`` output (the banner and ``* daemon ...`` lines skipped)."""
    devices: list[Device] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue
        serial, *tail = line.split(None, 1)  # `-l` pads with spaces, plain `devices` uses a tab
        rest = tail[0].strip() if tail else ""
        if rest.startswith("no permissions"):
            # "no permissions (user in plugdev group; are your udev rules wrong?); see [...]"
            state, words = "no permissions", []
        else:
            state, *words = rest.split() or ["unknown"]
        details = dict(w.split(":", 1) for w in words if ":" in w)
        devices.append(Device(serial=serial, state=state, details=details))
    return devices


def _last_line(*texts: str | bytes | None) -> str:
    """The last informative line of the given outputs, tried in order (stderr before stdout)."""
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        lines = [line for line in lines if not _SIGNAL_NOTICES.match(line)] or lines
        if lines:
            line = lines[-1]
            return line if len(line) <= 300 else line[:297] + "..."
    return "no output"


def _status(returncode: int) -> str:
    """``exit status 134 (SIGABRT)``: the remote shell reports a signal as 128 + its number."""
    if returncode < 0:  # the local adb itself was killed
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    if 128 < returncode < 128 + 65:
        try:
            return f"exit status {returncode} ({signal.Signals(returncode - 128).name})"
        except ValueError:
            pass
    return f"exit status {returncode}"


class Adb:
    """The ``adb`` binary, bound to one phone.

    ``binary``: the adb to run (default: ``adb`` found on PATH); ``serial``: the phone
    (default: the only one attached). Nothing runs until the first call; the phone is chosen
    (:meth:`select`) once, before the first command that needs it.
    """

    def __init__(self, binary: str | os.PathLike[str] | None = None, serial: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.binary: str | None
        if binary is None:
            self.binary = shutil.which("adb")
        else:
            path = str(binary)
            # A bare name is looked up on PATH; a path must be an executable file.
            self.binary = shutil.which(path) if os.sep not in path else (
                path if os.path.isfile(path) and os.access(path, os.X_OK) else None)
        self._binary_arg = None if binary is None else str(binary)
        self.serial = serial
        self.timeout_s = timeout_s
        self._selected: str | None = None

    # -- running adb ------------------------------------------------------------------------

    def _adb(self) -> str:
        if self.binary is None:
            if self._binary_arg is None:
                raise AdbError(ADB_NOT_FOUND)
            raise AdbError(f"adb not found at {self._binary_arg} (not an executable file); "
                           "install Android platform-tools or pass --adb PATH")
        return self.binary

    def _run(self, args: Sequence[str], timeout_s: float | None, what: str) -> subprocess.CompletedProcess[str]:
        """Run ``adb ARGS``; a timeout or a failure to start is an :class:`AdbError` (exit codes are not)."""
        argv = [self._adb(), *args]
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=limit,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise AdbError(f"{what} timed out after {limit:g} s (last output: {_last_line(exc.stderr, exc.stdout)})")
        except OSError as exc:
            raise AdbError(f"could not run {argv[0]}: {exc.strerror or exc}") from None

    def _serial_args(self) -> list[str]:
        return ["-s", self.select()]

    # -- devices ----------------------------------------------------------------------------

    def devices(self, timeout_s: float = 20.0) -> list[Device]:
        """The attached devices, from ``adb devices -l``."""
        proc = self._run(["devices", "-l"], timeout_s, "adb devices -l")
        if proc.returncode != 0:
            raise AdbError(f"adb devices -l failed with {_status(proc.returncode)}: "
                           f"{_last_line(proc.stderr, proc.stdout)}")
        return parse_devices(proc.stdout)

    def select(self) -> str:
        """The serial to use: the one given (it must be attached and ready) or the only device attached.

        Raises :class:`AdbError` when none is attached, several are and none was given, the
        given one is not attached, or the device is unauthorized, offline or in another state.
        """
        if self._selected is not None:
            return self._selected
        devices = self.devices()
        if self.serial is not None:
            chosen = next((d for d in devices if d.serial == self.serial), None)
            if chosen is None:
                attached = ", ".join(d.serial for d in devices) or "none attached"
                raise AdbError(f"device {self.serial} is not attached (attached: {attached})")
        elif not devices:
            raise AdbError("no Android device attached: connect a phone with USB debugging on "
                           "(adb devices -l lists none)")
        elif len(devices) > 1:
            listed = ", ".join(f"{d.serial} ({d.model or d.state})" for d in devices)
            raise AdbError(f"several devices attached: {listed}; pick one with --serial")
        else:
            chosen = devices[0]
        if chosen.state == "unauthorized":
            raise AdbError(f"device {chosen.serial} is unauthorized: accept the USB debugging prompt on the phone")
        if chosen.state == "offline":
            raise AdbError(f"device {chosen.serial} is offline: unplug and replug it, or run 'adb kill-server'")
        if chosen.state != "device":
            raise AdbError(f"device {chosen.serial} is in state '{chosen.state}', not ready for adb commands")
        self._selected = chosen.serial
        return chosen.serial

    # -- commands ---------------------------------------------------------------------------

    def shell(self, cmd: Sequence[str], timeout_s: float | None = None, check: bool = True) -> ShellResult:
        """Run ``cmd`` (a list of words) on the phone; with ``check``, a non-zero exit is an :class:`AdbError`."""
        if isinstance(cmd, str):
            raise TypeError("Adb.shell takes a list of words, not a string")
        words = [str(w) for w in cmd]
        if not words:
            raise ValueError("Adb.shell needs a command")
        remote = " ".join(shlex.quote(w) for w in words)
        serial_args = self._serial_args()
        what = f"adb shell {remote!r} on {self._selected}"
        proc = self._run([*serial_args, "shell", remote], timeout_s, what)
        result = ShellResult(command=tuple(words), returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)
        if check and proc.returncode != 0:
            raise AdbError(f"{what} failed with {_status(proc.returncode)}: {_last_line(proc.stderr, proc.stdout)}")
        return result

    def push(self, local: str | os.PathLike[str], remote: str, timeout_s: float | None = None) -> None:
        """Copy ``local`` to ``remote`` on the phone."""
        local_path = Path(local)
        if not local_path.exists():
            raise AdbError(f"adb push: {local_path} does not exist")
        serial_args = self._serial_args()
        what = f"adb push {local_path} {remote} on {self._selected}"
        proc = self._run([*serial_args, "push", str(local_path), remote], timeout_s, what)
        if proc.returncode != 0:
            raise AdbError(f"{what} failed with {_status(proc.returncode)}: {_last_line(proc.stderr, proc.stdout)}")

    def pull(self, remote: str, local: str | os.PathLike[str], timeout_s: float | None = None) -> Path:
        """Copy ``remote`` from the phone to ``local`` (a file, or a folder to put it in); returns the local file."""
        local_path = Path(local)
        serial_args = self._serial_args()
        what = f"adb pull {remote} {local_path} on {self._selected}"
        proc = self._run([*serial_args, "pull", remote, str(local_path)], timeout_s, what)
        if proc.returncode != 0:
            raise AdbError(f"{what} failed with {_status(proc.returncode)}: {_last_line(proc.stderr, proc.stdout)}")
        return local_path / Path(remote).name if local_path.is_dir() else local_path

    def getprop(self, name: str, timeout_s: float | None = 20.0) -> str:
        """A system property (``ro.product.model``, ``ro.product.device``, ``ro.soc.model``); "" when unset."""
        if not _PROPERTY.match(name):
            raise ValueError(f"not a property name: {name!r}")
        return self.shell(["getprop", name], timeout_s=timeout_s).stdout.strip()
