"""How many token pairs each block merges: `tome.r` / `tome.inflection` -> one r per layer.

`tome.r` is either a constant (the same r in every layer, or ToMe's linear schedule when
`tome.inflection` != 0) or an explicit per-layer list. ToMe's schedule (Bolya et al., code release)
runs linearly from r * (1 - inflection) in the first layer to r * (1 + inflection) in the last, so the
total stays about r * depth: inflection -1 is the paper's "decreasing" schedule, 0 a constant r.
Layer i gets int(first + step * i) with step = (last - first) / (depth - 1), computed in that order so
that float rounding gives the reference's values exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from fast_ast.tome.merge import max_merges


def _check_count(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def requested_schedule(r: int | Sequence[int], inflection: float | None, depth: int) -> list[int]:
    """The r asked for in each of `depth` layers (before capping to what a layer holds)."""
    inflection = 0.0 if inflection is None else inflection
    if isinstance(inflection, bool) or not isinstance(inflection, (int, float)) or not -1.0 <= inflection <= 1.0:
        raise ValueError(f"tome.inflection must be a number in [-1, 1], got {inflection!r}")
    if isinstance(r, Sequence) and not isinstance(r, str):
        if len(r) != depth:
            raise ValueError(f"tome.r lists one r per layer: expected {depth} values, got {len(r)} ({list(r)})")
        if inflection != 0:
            raise ValueError(f"tome.inflection applies to a constant tome.r, not to a per-layer list (got {inflection})")
        return [_check_count(value, f"tome.r[{layer}]") for layer, value in enumerate(r)]
    r = _check_count(r, "tome.r")
    first = int(r * (1.0 - inflection))
    if depth == 1:  # the reference divides by depth - 1 here; r keeps the schedule's total, r * depth
        return [r]
    step = (2 * r - 2 * first) / (depth - 1)  # (last - first) / (depth - 1), last = 2r - first
    return [int(first + step * layer) for layer in range(depth)]  # the reference's parse_r, rounding included


def capped_schedule(requested: Sequence[int], num_tokens: int, num_protected: int) -> list[int]:
    """Per-layer r after capping each layer at half the mergeable tokens entering it."""
    capped = []
    for r in requested:
        r = min(r, max_merges(num_tokens, num_protected))
        capped.append(r)
        num_tokens -= r
    return capped


def tokens_per_layer(num_tokens: int, schedule: Sequence[int]) -> list[int]:
    """Tokens entering each block's attention under a capped schedule (the block's MLP sees r fewer)."""
    counts = []
    for r in schedule:
        counts.append(num_tokens)
        num_tokens -= r
    return counts


def requested_keep_rates(keep_rate: float | Sequence[float], depth: int) -> list[float]:
    """Attention pruning: the fraction of patch tokens kept in each of `depth` layers (1.0 = no pruning)."""
    if isinstance(keep_rate, Sequence) and not isinstance(keep_rate, str):
        if len(keep_rate) != depth:
            raise ValueError(f"tome.keep_rate lists one rate per layer: expected {depth} values, got {len(keep_rate)} ({list(keep_rate)})")
        return [_check_rate(value, f"tome.keep_rate[{layer}]") for layer, value in enumerate(keep_rate)]
    return [_check_rate(keep_rate, "tome.keep_rate")] * depth


def _check_rate(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ValueError(f"{key} must be a number in (0, 1] (the fraction of patch tokens kept), got {value!r}")
    return float(value)
