"""Random draws that depend only on (seed, epoch, batch): a resumed run repeats an uninterrupted one.

Lightning checkpoints do not hold the random generators' state, so a run resumed from last.ckpt (a
requeued SLURM job, a re-run command) would shuffle and augment differently from the run it continues.
This callback seeds
  - the train sampler's shuffling (RandomSampler, WeightedRandomSampler, ...) from (seed, epoch) at
    the start of each epoch (Lightning's DistributedSampler under DDP is already seeded by epoch), and
  - Python's, NumPy's and torch's global generators (SpecAugment masks, mixup, dropout) from
    (seed, epoch, batch, global rank) before each training batch,
so that epoch e draws the same whether or not the run stopped before it.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch import Callback


def derived_seed(*entropy: int) -> int:
    """A 32-bit seed from a tuple of non-negative integers, e.g. (seed, epoch, batch, rank)."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


class BatchSeed(Callback):
    def __init__(self, seed: int):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # The sampler draws its permutation on the loader's first batch, after this hook.
        sampler = getattr(trainer.train_dataloader, "sampler", None)
        if hasattr(sampler, "generator"):
            sampler.generator = torch.Generator().manual_seed(derived_seed(self.seed, trainer.current_epoch))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        value = derived_seed(self.seed, trainer.current_epoch, batch_idx, trainer.global_rank)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)  # CPU and every CUDA device
