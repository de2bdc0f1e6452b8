"""Quiet the toolchain's import-time chatter in the command-line tools.

torchao logs a warning for each optional CUDA extension it cannot load, torch's pytree
warns about an enum registration inside torchao, and executorch's tree-spec code raises a
deprecation FutureWarning on every program it (de)serialises. None of it is actionable
for a user of these CLIs, and it buries the one-line progress and error messages. Library
users who import :mod:`seemore` keep the toolchain's defaults; only the CLIs call
:func:`quiet_toolchain_logs`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from typing import Any

_NOISY_LOGGERS = ("torchao", "torch.utils._pytree")


def quiet_toolchain_logs() -> None:
    """Raise the noisy toolchain loggers to ERROR and drop the known deprecation warnings."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*read_binary is deprecated.*", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"This API is experimental.*")


@contextlib.contextmanager
def quiet_info_logs() -> Iterator[None]:
    """Silence INFO logging while a toolchain converts a model.

    ExecuTorch's Vulkan modules set the *root* logger to INFO when imported and then log every
    operator and layout transition; the ONNX exporter logs every initializer it deduplicates.
    Both bury the CLI's progress bar and say nothing a user can act on.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(previous)


def import_coremltools() -> Any:
    """``import coremltools`` without its import-time warnings.

    On Linux coremltools logs "Failed to load _MLModelProxy ..." for each native class it lacks
    (prediction is macOS-only) and that torch 2.13 "has not been tested"; neither is actionable
    (this project pins the toolchain it has checked), and each import repeats them on stderr.
    """
    logger = logging.getLogger("coremltools")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import coremltools

        return coremltools
    finally:
        logger.setLevel(previous)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[io.StringIO]:
    """Capture what a toolchain writes to ``sys.stderr`` (coremltools' per-pass tqdm bars).

    The CLI's own progress bar and one-line errors are what belongs on stderr; the captured
    text is yielded so a caller can still show it when the step fails.
    """
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        yield buffer


@contextlib.contextmanager
def quiet_fd2() -> Iterator[None]:
    """Discard what is written to file descriptor 2 meanwhile, by native code (a runtime's C++
    log lines) or by Python's ``sys.stderr``; the CLI's one-line errors stay alone on stderr."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with contextlib.redirect_stderr(null):
                yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
