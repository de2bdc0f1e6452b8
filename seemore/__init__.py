"""seemore-mobile: SeemoRe super-resolution from PyTorch to phones."""

# First, before torch loads (seconds): a Ctrl-C during start-up prints one line, not a traceback.
from seemore.common.interrupt import quiet_uncaught_interrupts

quiet_uncaught_interrupts()

from seemore.checkpoint import (
    CheckpointError,
    create_model,
    list_models,
    list_shipped,
    load_model,
    save_model,
)
from seemore.config import SeemoReConfig, get_config, list_variants
from seemore.model import SeemoRe

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "SeemoRe",
    "SeemoReConfig",
    "create_model",
    "get_config",
    "list_models",
    "list_shipped",
    "list_variants",
    "load_model",
    "save_model",
]
