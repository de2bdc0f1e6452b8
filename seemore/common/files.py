"""Atomic writes (files and directories), SHA-256 of files and of directory trees.

A reader never sees a half-written artifact: everything is written under a temporary name
beside its destination and renamed into place. Temporary names follow one pattern
(``.<name>.<host>-<pid>.<random>.tmp``), so a write that was killed (SIGKILL, power loss)
leaves a file that the next write to the same place recognises as ours and removes: at once
when the process that made it is gone (same host, PID not running), else once it is older
than :data:`STALE_TMP_SECONDS` (another host's, or a PID that was reused).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from seemore.common import interrupt

# A leftover temporary is only removed when it is older than this: a younger one may belong
# to a write that is still running in another process.
STALE_TMP_SECONDS = 600.0


_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def tmp_prefix(path: Path) -> str:
    """The start of this process's temporary names for ``path`` (``.<name>.<host>-<pid>.``)."""
    return f".{path.name}.{_HOST}-{os.getpid()}."


def _owner_gone(leftover: Path, path: Path) -> bool:
    """Whether ``leftover`` was made by a process of this host that no longer runs."""
    rest = leftover.name[len(f".{path.name}.") :]
    match = re.match(r"([A-Za-z0-9]+)-(\d+)\.", rest)
    if match is None or match.group(1) != _HOST:
        return False
    pid = int(match.group(2))
    if pid == os.getpid():
        return False  # ours: another write of this process may be under way (threads)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # runs, as another user
        return False
    return False


def _clean_stale(path: Path) -> None:
    """Remove our own temporaries of ``path`` left behind by a killed write."""
    now = time.time()
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if _owner_gone(leftover, path) or now - leftover.lstat().st_mtime > STALE_TMP_SECONDS:
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
        except OSError:
            pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_parent(path: str | Path) -> None:
    """Create ``path``'s folder (and its parents); a regular file in the way is named in the error.

    ``mkdir`` alone says "File exists" about the first file on the way, which reads as if the
    output itself existed.
    """
    parent = Path(path).parent
    for folder in (parent, *parent.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                raise NotADirectoryError(f"{path}: cannot create its folder: {folder} is a file, not a folder")
            break
    parent.mkdir(parents=True, exist_ok=True)


def probe_writable(path: str | Path) -> None:
    """Create and remove an empty temporary beside ``path`` (the atomic writer's naming, so one
    left by a kill is cleaned like theirs): an OSError now instead of after the work."""
    path = Path(path)
    fd, probe = tempfile.mkstemp(prefix=tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(probe)


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``, so readers never see a partial file."""
    path = Path(path)
    make_parent(path)
    _clean_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        if os.path.isfile(tmp):
            os.chmod(tmp, 0o666 & ~_umask())
        interrupt.check()  # nothing appears after a Ctrl-C, even one Python swallowed
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(payload))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_dir(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_dir)`` to fill a fresh directory, then put it in place of ``path``.

    For directory artifacts (a Core ML ``.mlpackage``). An existing ``path`` is first renamed
    aside and removed only after the new tree is in place, so a failure leaves the old one.
    """
    path = Path(path)
    make_parent(path)
    _clean_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        interrupt.check()
        old = None
        if path.exists() or path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=tmp_prefix(path), suffix=".tmp", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a directory tree: every file's relative path and contents, in sorted order.

    Independent of where the tree lies, of timestamps and permissions; a renamed, added,
    removed or changed file changes it. Symbolic links are hashed by their target string.
    """
    root = Path(path)
    digest = hashlib.sha256()
    for item in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        rel = item.relative_to(root).as_posix().encode()
        if item.is_symlink():
            digest.update(b"L" + rel + b"\0" + os.readlink(item).encode() + b"\0")
        elif item.is_file():
            digest.update(b"F" + rel + b"\0" + bytes.fromhex(file_sha256(item)))
        elif item.is_dir():
            digest.update(b"D" + rel + b"\0")
    return digest.hexdigest()


def path_sha256(path: str | Path) -> str:
    """:func:`file_sha256` for a file, :func:`tree_sha256` for a directory artifact."""
    return tree_sha256(path) if Path(path).is_dir() else file_sha256(path)


def path_bytes(path: str | Path) -> int:
    """Size of a file, or the total size of the files in a directory tree."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
    return p.stat().st_size
