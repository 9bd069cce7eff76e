"""Budgeted search of a per-layer reduction schedule (pure: the caller gives the score and cost).

A schedule is a list of per-layer levels (0 = no reduction in that layer); `amounts(levels)` turns it
into the method's keys (ToMe / temporal: r = level * step; pruning: keep rate 1 - level * step).
Greedy search: starting from no reduction, each round raises one layer's level by one, choosing the
layer that loses the least score per unit of cost saved, until the cost is within `budget` of the
unreduced cost (or the time limit is reached: then the result says it is not within budget).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SearchResult:
    levels: list[int]
    score: float
    cost: float                     # relative to the unreduced cost
    within_budget: bool
    evaluations: int
    seconds: float
    trajectory: list[dict] = field(default_factory=list)  # one entry per round: levels, score, cost


def greedy_search(
    depth: int,
    max_level: int,
    score: Callable[[list[int]], float],
    cost: Callable[[list[int]], float],
    budget: float,
    time_limit_s: float = float("inf"),
) -> SearchResult:
    """Greedy per-layer schedule within `budget` (a fraction of cost([0] * depth)), higher score better.

    score and cost are called with a levels list; levels never exceed max_level. A candidate that
    saves no cost (the layer is already at its cap) is not taken.
    """
    if not 0 < budget <= 1:
        raise ValueError(f"budget must be in (0, 1] (a fraction of the unreduced cost), got {budget!r}")
    started = time.monotonic()
    levels = [0] * depth
    full = cost(levels)
    current_score, current_cost = score(levels), 1.0
    evaluations = 1
    trajectory = [{"levels": list(levels), "score": current_score, "cost": current_cost}]
    while current_cost > budget and time.monotonic() - started < time_limit_s:
        best = None
        for layer in range(depth):
            if levels[layer] >= max_level:
                continue
            candidate = levels.copy()
            candidate[layer] += 1
            candidate_cost = cost(candidate) / full
            saved = current_cost - candidate_cost
            if saved <= 0:
                continue
            candidate_score = score(candidate)
            evaluations += 1
            rate = (candidate_score - current_score) / saved  # score change per unit cost saved (higher: better)
            if best is None or rate > best[0]:
                best = (rate, candidate, candidate_score, candidate_cost)
            if time.monotonic() - started >= time_limit_s:
                break
        if best is None:
            break
        _, levels, current_score, current_cost = best
        trajectory.append({"levels": list(levels), "score": current_score, "cost": current_cost})
    return SearchResult(levels, current_score, current_cost, current_cost <= budget, evaluations, time.monotonic() - started, trajectory)


def cheapest_within(values: list, cost: Callable[[object], float], budget: float):
    """The first value of `values` (ordered by increasing reduction) whose relative cost is <= budget, or None."""
    for value in values:
        if cost(value) <= budget:
            return value
    return None
