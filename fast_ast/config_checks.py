"""Type and range checks of config values, each error naming the key, the value and what is expected.

Hydra passes `key=abc` as a string and `key="32"` as the string "32"; without these checks such values
fail deep inside a library with a message naming neither (or, for a batch size, become [3, 2]).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any

from omegaconf import DictConfig, OmegaConf


def check_int(key: str, value: Any, minimum: int) -> int:
    """`value` as an int >= minimum; a bool, float, string or anything else is refused, naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value}")
    return value


def check_positive_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{key} must be a number > 0, got {value!r} ({type(value).__name__})")
    if not value > 0:
        raise ValueError(f"{key} must be a number > 0, got {value}")
    return float(value)


def check_batch_sizes(key: str, value: Any) -> list[int]:
    """An int >= 1, or a non-empty list of them (a per-epoch schedule) -> the schedule as a list."""
    if isinstance(value, Sequence) and not isinstance(value, str) or OmegaConf.is_list(value):
        schedule = list(value)
        if not schedule:
            raise ValueError(f"{key} must be a positive integer or a non-empty list of them, got an empty list")
        return [check_int(f"{key}[{i}]", size, 1) for i, size in enumerate(schedule)]
    return [check_int(key, value, 1)]


def check_train_config(cfg: DictConfig) -> None:
    """The training keys not owned by a component that checks its own (the data module checks data.*)."""
    check_positive_number("model.optim.lr", OmegaConf.select(cfg, "model.optim.lr"))
    max_epochs = OmegaConf.select(cfg, "trainer.max_epochs")
    if max_epochs is not None:  # null: Lightning's default (max_steps decides)
        check_int("trainer.max_epochs", max_epochs, 1)
