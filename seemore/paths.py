"""Where data lives: the shared data root, and the bundled fallback images.

The data root is, in order: an explicit argument (a CLI's ``--data-root``), the
``SEEMORE_DATA`` environment variable, then ``../shared/data`` next to the repository
checkout or next to the current directory. When none exists, callers fall back to the
natural images that scikit-image ships inside its wheel (astronaut, coffee, ...), so the
pipeline still runs on a machine without the data, and they say so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DATA_ENV = "SEEMORE_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent

# Colour photographs shipped in scikit-image's wheel (no download needed).
BUNDLED_IMAGE_NAMES: tuple[str, ...] = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "ihc.png",
    "hubble_deep_field.jpg",
)


class DataError(ValueError):
    """A data folder or image that cannot be used; the message is one line."""


def default_data_root() -> Path | None:
    """The data root from ``SEEMORE_DATA`` or a ``../shared/data`` folder, if one exists."""
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DataError(f"{DATA_ENV}={env}: no such folder")
        return root
    for base in (REPO_ROOT, Path.cwd()):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return None


def resolve_data_root(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """``explicit`` if given (must exist), else :func:`default_data_root`."""
    if explicit is not None:
        root = Path(explicit).expanduser()
        if not root.is_dir():
            raise DataError(f"{explicit}: data root is not a folder")
        return root
    return default_data_root()


def bundled_images() -> list[Path]:
    """Paths of the sample photographs that the installed scikit-image ships."""
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - scikit-image is a dependency
        raise DataError("no data root and scikit-image is not installed for the bundled images") from exc
    folder = Path(skimage.data.__file__).parent
    found = [folder / n for n in BUNDLED_IMAGE_NAMES if (folder / n).is_file()]
    if not found:
        raise DataError(f"no bundled sample images found in {folder}")
    return found


def note_fallback(what: str) -> None:
    """Tell the user (on stderr) that bundled images replace the missing data root."""
    print(
        f"note: no data root found ({DATA_ENV} unset, no ../shared/data); "
        f"using scikit-image's bundled sample photos for {what}",
        file=sys.stderr,
    )
