"""Optimisers and learning-rate schedules of the AST recipes (conf/model/*.yaml: `optim`).

Adam with AST's betas (0.95, 0.999) and weight decay 5e-7; linear warmup over the first
`warmup_steps` optimiser steps; then either MultiStepLR-style decay by `decay` every `step_epochs`
epochs from `start_epoch` (AST), or cosine annealing to `min_lr_ratio` over the run.
"""

from __future__ import annotations

import math
from typing import Callable

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


def build_scheduler(optimizer, schedule: dict, current_epoch: Callable[[], int], total_steps: int):
    """A per-step LambdaLR; `current_epoch` is read at each step so epoch-based decay follows the trainer."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(schedule, step, current_epoch(), total_steps)
    )
