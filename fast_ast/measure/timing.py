"""Timing primitives shared by every benchmark and by the throughput figure of results.json.

Comparisons run the contenders in the same process, alternating round by round after warm-up, and
report the median of the per-round ratios (robust to drift and to other load on the machine).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from fast_ast.device import device_description


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_once(fn: Callable[[], object], device: torch.device | str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def alternating_times(
    contenders: dict[str, Callable[[], object]], device: torch.device | str, warmup: int = 1, repeats: int = 5
) -> dict[str, list[float]]:
    """Seconds per call of each contender; every round runs each once, in turn."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            times[name].append(time_once(fn, device))
    return times


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator[i] / denominator[i]."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


@torch.inference_mode()
def eval_throughput(
    model: torch.nn.Module, example: torch.Tensor, warmup: int = 1, repeats: int = 5
) -> dict[str, float | str | int]:
    """Clips/s of `model(example)` in eval mode (median over repeats), with the device it ran on."""
    was_training = model.training
    model.eval()
    seconds = alternating_times({"model": lambda: model(example)}, example.device, warmup, repeats)["model"]
    model.train(was_training)
    median = statistics.median(seconds)
    return {
        "clips_per_s": example.shape[0] / median,
        "batch_size": int(example.shape[0]),
        "repeats": repeats,
        "device": device_description(example.device),
    }
