"""Optimisers and learning-rate schedules of the AST recipes (conf/model/*.yaml: `optim`).

Adam with AST's betas (0.95, 0.999) and weight decay 5e-7; linear warmup over the first
`warmup_steps` optimiser steps; then either MultiStepLR-style decay by `decay` every `step_epochs`
epochs from `start_epoch` (AST), or cosine annealing to `min_lr_ratio` over the run.

The schedule is a per-step LambdaLR. Lightning steps it after each optimiser step, before the trainer's
epoch counter moves on at an epoch's last batch, so the epoch is the one of the *next* step: a decayed rate
applies from the first step of its epoch, as AST's per-epoch MultiStepLR. The run's length (cosine) counts
every epoch with its own batch size when data.batch_size is a per-epoch list.
"""

from __future__ import annotations

import math
import torch

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULES = ("multistep", "cosine", "constant")


def check_optim(optim: dict) -> None:
    """Raises ValueError naming the key for any invalid optimisation setting."""
    if optim.get("name", "adam") not in OPTIMIZERS:
        raise ValueError(f"model.optim.name must be one of {sorted(OPTIMIZERS)}, got {optim.get('name')!r}")
    if not optim["lr"] > 0:
        raise ValueError(f"model.optim.lr must be > 0, got {optim['lr']}")
    if optim.get("weight_decay", 0) < 0:
        raise ValueError(f"model.optim.weight_decay must be >= 0, got {optim['weight_decay']}")
    schedule = optim.get("schedule", {})
    if schedule.get("name", "multistep") not in SCHEDULES:
        raise ValueError(f"model.optim.schedule.name must be one of {SCHEDULES}, got {schedule.get('name')!r}")
    if schedule.get("warmup_steps", 0) < 0:
        raise ValueError(f"model.optim.schedule.warmup_steps must be >= 0, got {schedule['warmup_steps']}")
    if not 0 < schedule.get("decay", 0.5) <= 1:
        raise ValueError(f"model.optim.schedule.decay must be in (0, 1], got {schedule['decay']}")


def build_optimizer(parameters, optim: dict) -> torch.optim.Optimizer:
    name = optim.get("name", "adam")
    kwargs = {"lr": optim["lr"], "weight_decay": optim.get("weight_decay", 0.0)}
    if name in ("adam", "adamw"):
        kwargs["betas"] = tuple(optim.get("betas", (0.95, 0.999)))
    elif name == "sgd":
        kwargs["momentum"] = optim.get("momentum", 0.9)
    return OPTIMIZERS[name](parameters, **kwargs)


def lr_factor(schedule: dict, step: int, epoch: int, total_steps: int) -> float:
    """Multiplier of the base lr at optimiser `step` (0-based) during `epoch` (0-based)."""
    warmup = schedule.get("warmup_steps", 0)
    factor = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    name = schedule.get("name", "multistep")
    if name == "multistep":
        start, every = schedule.get("start_epoch", 5), max(1, schedule.get("step_epochs", 1))
        decays = 0 if epoch < start else (epoch - start) // every + 1
        factor *= schedule.get("decay", 0.5) ** decays
    elif name == "cosine":
        progress = min(1.0, max(0, step - warmup) / max(1, total_steps - warmup))
        floor = schedule.get("min_lr_ratio", 0.0)
        factor *= floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def epoch_of_next_step(trainer) -> int:
    """The (0-based) epoch of the optimiser step the scheduler is computing the rate for."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    epoch_done = progress.is_last_batch or progress.current.ready >= trainer.num_training_batches
    return trainer.current_epoch + int(trainer.training and epoch_done and progress.current.ready > 0)


def planned_steps(trainer) -> int:
    """Optimiser steps of the whole run (the cosine length).

    Lightning's estimated_stepping_batches assumes every epoch has epoch 0's batches; with a per-epoch
    batch-size schedule (the datamodule's batch_size_schedule) each epoch is counted with its own size.
    """
    estimate = max(1, int(trainer.estimated_stepping_batches))  # also sets up the train loader
    datamodule = trainer.datamodule
    if len(getattr(datamodule, "batch_size_schedule", ())) <= 1 or trainer.max_epochs in (None, -1):
        return estimate
    clips = len(trainer.train_dataloader.sampler)  # per process, after any distributed sampler
    limit = trainer.limit_train_batches
    total = 0
    for epoch in range(trainer.max_epochs):
        batches = math.ceil(clips / datamodule.batch_size_at(epoch))
        batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
        total += math.ceil(batches / trainer.accumulate_grad_batches)
    if trainer.max_steps > 0:
        total = min(total, trainer.max_steps)
    return max(1, total)


def build_scheduler(optimizer, schedule: dict, trainer):
    """A per-step LambdaLR following `trainer`: the epoch of each step and the run's planned steps."""
    total_steps = planned_steps(trainer)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(schedule, step, epoch_of_next_step(trainer), total_steps)
    )
