"""Random draws that depend only on (seed, epoch, batch): a resumed run repeats an uninterrupted one.

Lightning checkpoints do not hold the random generators' state, so a run resumed from last.ckpt (a
requeued SLURM job, a re-run command) would shuffle and augment differently from the run it continues.
This callback seeds
  - at the start of each epoch, from (seed, epoch, rank): a weighted train sampler's draws
    (the plain shuffle of fast_ast.data.views.ViewSampler is seeded by (data.augment.seed, epoch) already),
    the loader's own generator, and the global generators that the epoch's first batch is read with;
  - before each training batch, from (seed, epoch, batch, rank): Python's, NumPy's and torch's global
    generators (SpecAugment masks, mixup, dropout, and the random reads of the next batch),
so that epoch e draws the same whether or not the run stopped before it. Exact when clips are read in
the main process (data.num_workers=0) or without randomness; worker processes keep their own state.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch import Callback


def derived_seed(*entropy: int) -> int:
    """A 32-bit seed from a tuple of non-negative integers, e.g. (seed, epoch, batch, rank)."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def seed_globals(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # CPU and every CUDA device


class BatchSeed(Callback):
    def __init__(self, seed: int):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # The loader may start iterating before this hook (first epoch) or after it (later epochs); its
        # own draws use its own generator and the sampler draws its permutation on the first batch.
        epoch, rank = trainer.current_epoch, trainer.global_rank
        loader = trainer.train_dataloader
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "generator"):
            sampler.generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch, rank, 0))
        if hasattr(loader, "generator"):
            loader.generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch, rank, 1))
        seed_globals(derived_seed(self.seed, epoch, rank, 2))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        seed_globals(derived_seed(self.seed, trainer.current_epoch, batch_idx, trainer.global_rank))
