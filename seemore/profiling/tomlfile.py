"""Checks shared by the profiling data files (``mobile/devices.toml``, ``mobile/anchors.toml``):
every problem is one line naming the exact key path, raised as the file kind's own error."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, NoReturn


class TomlChecks:
    """The key-path checks of one kind of data file; ``error`` is the exception class it raises."""

    def __init__(self, error: type[ValueError]) -> None:
        self.error = error

    def fail(self, path: str, message: str) -> NoReturn:
        """Raise the file kind's error for ``path`` (a dotted key path, "" for the top level)."""
        raise self.error(f"{path}: {message}" if path else message)

    @staticmethod
    def join(path: str, key: str | int) -> str:
        """The key path of ``key`` (a name or an array index) under ``path``."""
        if isinstance(key, int):
            return f"{path}[{key}]"
        return f"{path}.{key}" if path else key

    def mapping(self, data: Any, path: str) -> dict[str, Any]:
        """``data`` when it is a table."""
        if not isinstance(data, dict):
            self.fail(path, f"must be a table, got {type(data).__name__}")
        return data

    def table(self, data: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
        """``data`` when it is a table with every ``required`` key and no key outside ``required + optional``."""
        for key in self.mapping(data, path):
            if key not in required and key not in optional:
                self.fail(self.join(path, key), f"unknown key (allowed: {', '.join(sorted(required + optional))})")
        for key in required:
            if key not in data:
                self.fail(self.join(path, key), "missing")
        return data

    def text(self, data: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        """A non-empty string value (``default`` when the key is absent and a default is given)."""
        if key not in data and default is not None:
            return default
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(self.join(path, key), "must be a non-empty string")
        return value

    def read(self, path: Path, what: str) -> dict[str, Any]:
        """The parsed TOML of ``path``; unreadable or invalid files are one-line errors naming ``what``."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise self.error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise self.error(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from None
