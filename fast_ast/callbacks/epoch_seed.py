"""Reseeds every random generator at the start of each training epoch from (seed, epoch).

Lightning checkpoints do not hold the random generators' state, so a run resumed from last.ckpt
(a requeued SLURM job, a re-run command) would shuffle and augment differently from the run that was
interrupted. With the generators a function of (seed, epoch) only, epoch e draws the same shuffling,
SpecAugment masks and mixup pairs whether or not the run stopped before it: the resumed run ends with
the same weights and metrics as an uninterrupted one.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch import Callback


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for epoch `epoch` (0-based) of a run seeded with `seed`."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class EpochSeed(Callback):
    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        value = epoch_seed(self.seed, trainer.current_epoch)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)  # CPU and every CUDA device
