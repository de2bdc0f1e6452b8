"""Training SeemoRe: ``python -m seemore.train [--config FILE.toml] [--key value ...]``.

The defaults are the paper's recipe (docs/MODEL.md): LR patches 64x64, batch 32, L1 + 0.1 FFT
loss, Adam 1e-3 with betas (0.9, 0.99), 500k iterations with the learning rate halved at
250k, 400k, 450k and 475k. A TOML config file and command-line flags override fields of
:class:`TrainConfig`; the resolved config is saved next to the checkpoints.

Runs on CPU, on one GPU (automatic mixed precision) and on several GPUs with
``torchrun --nproc_per_node N -m seemore.train ...`` (DistributedDataParallel; each rank
draws its own batches, the batch size is per process).

Output folder (``--out``): ``config.json``, ``state.pt`` (full training state, written
atomically: ``--resume`` continues from it bit-exactly on CPU), ``latest.safetensors`` and
``best.safetensors`` (weights + config + training record), ``log.csv``.

Before any work, every config value is checked (one line naming the key and what it may be,
exit status 2), and so are the output folder and the memory a training step needs:

* a folder that holds any of those files is a run: a new run there needs ``--overwrite`` (which
  removes exactly those files when training starts, never other files), ``--resume`` continues
  it, and the two together are refused;
* ``--resume`` takes the run's ``config.json``; flags and a ``--config`` file given with it are
  checked against it the same way, and may only change :data:`RESUME_CHANGEABLE` (settings that
  leave the run's math and identity alone; ``iterations`` extends a run, ``decay_iters`` branches
  a WSD run into its decay). On resume ``log.csv`` loses the rows logged after the saved state,
  which the resumed run logs again;
* the step's peak memory (:func:`estimate_step_bytes`) must fit the memory available, and the
  patch must fit in at least one training image (smaller images are mirror-padded, with a note).
"""

from seemore.train.cli import build_parser, main
from seemore.train.config import (
    RESUME_CHANGEABLE,
    ConfigError,
    TrainConfig,
    merge_resumed,
    resolve_config,
    resolve_device,
)
from seemore.train.memory import check_memory, estimate_step_bytes, measure_step_memory
from seemore.train.objective import EMA, fft_l1, lr_factor, sr_loss
from seemore.train.rundir import LOG_HEADER, RUN_FILES, check_out_dir, trim_log
from seemore.train.trainer import Trainer, init_from_checkpoint

__all__ = [
    "EMA", "LOG_HEADER", "RESUME_CHANGEABLE", "RUN_FILES", "ConfigError", "TrainConfig", "Trainer",
    "build_parser", "check_memory", "check_out_dir", "estimate_step_bytes", "fft_l1", "init_from_checkpoint",
    "lr_factor", "main", "measure_step_memory", "merge_resumed", "resolve_config", "resolve_device", "sr_loss",
    "trim_log",
]
