"""Token reduction settings (the `tome` config group): a pure plan, and an installer.

    reduction = plan_reduction(backbone, **cfg.tome)   # validates, reads the backbone, changes nothing
    install_reduction(backbone, reduction)             # sets backbone.token_reduction (None: plain)
    apply_tome(backbone, **cfg.tome)                   # both

The backbone's block loop (AST.forward_features) runs a reduction step between attention and MLP of
every block (fast_ast.tome.run). Methods (`tome.method`):
    tome      Token Merging (Bolya et al., ICLR 2023): tome.r token pairs merged per layer
    prune     attention top-k pruning with fusion (EViT): tome.keep_rate of the patch tokens kept per layer
    temporal  order-preserving merging of neighbouring time columns: tome.r column pairs per layer
and, with any of them, PaSST's structured patchout in training only (tome.freq_patchout rows,
tome.time_patchout columns of the patch grid dropped). A plan that reduces nothing is None, so the
plain block loop runs with no reduction code in it. Only the forward pass changes, never the weights:
any checkpoint runs with any setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from fast_ast.tome.prune import kept_count
from fast_ast.tome.schedule import capped_schedule, requested_keep_rates, requested_schedule
from fast_ast.tome.temporal import max_column_merges

METHODS = ("tome", "prune", "temporal")


@dataclass
class TokenReduction:
    """A validated reduction for one backbone; `schedule[i]` is block i's amount (tome: pairs merged,
    capped; temporal: time-column pairs merged; prune: keep rate).

    After a forward with trace_source=True, `source` holds [B, N', N0] (0/1: which first-block tokens,
    prefix included, each final token holds) and `size` the final token sizes [B, N', 1] (all final
    tokens after `forward_features`; the rows the head reads only after `forward`).
    """

    method: str
    schedule: list
    num_tokens: int
    num_prefix: int
    grid: tuple[int, int]
    prop_attn: bool = True
    trace_source: bool = False
    freq_patchout: int = 0
    time_patchout: int = 0
    source: torch.Tensor | None = field(default=None, repr=False, compare=False)
    size: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def layer_tokens(self) -> list[tuple[int, int]]:
        """(tokens entering attention, tokens entering the MLP) of each block at evaluation (no patchout)."""
        counts, n, t_dim = [], self.num_tokens, self.grid[1]
        for amount in self.schedule:
            if self.method == "tome":
                out = n - amount
            elif self.method == "temporal":
                merged = min(amount, max_column_merges(t_dim))
                t_dim -= merged
                out = n - merged * self.grid[0]
            else:
                patches = n - self.num_prefix
                keep = kept_count(patches, amount)
                out = n if keep == patches else self.num_prefix + keep + 1
            counts.append((n, out))
            n = out
        return counts

    @property
    def tokens_per_layer(self) -> list[int]:
        return [n for n, _ in self.layer_tokens]


def _check_bool(value, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"tome.{key} must be true or false, got {value!r}")
    return value


def _check_lines(value, key: str, total: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < total:
        raise ValueError(f"tome.{key} must be an integer in [0, {total - 1}] (the patch grid has {total} {what}), got {value!r}")
    return value


def plan_reduction(
    backbone: nn.Module,
    method: str = "tome",
    r: int | Sequence[int] = 0,
    inflection: float | None = 0.0,
    keep_rate: float | Sequence[float] = 1.0,
    freq_patchout: int = 0,
    time_patchout: int = 0,
    prop_attn: bool = True,
    trace_source: bool = False,
) -> TokenReduction | None:
    """The TokenReduction `backbone` would run with these `tome.*` settings (None: no reduction at all).

    Pure: reads the backbone's depth, token count, prefix and grid, changes nothing. Every setting that
    does not fit the backbone or the method is a ValueError naming its key.
    """
    _check_bool(prop_attn, "prop_attn")
    _check_bool(trace_source, "trace_source")
    if method not in METHODS:
        raise ValueError(f"tome.method must be one of {list(METHODS)}, got {method!r}")
    keep_rate = 1.0 if keep_rate is None else keep_rate
    freq_patchout = 0 if freq_patchout is None else freq_patchout
    time_patchout = 0 if time_patchout is None else time_patchout
    depth = backbone.depth if backbone.supports_token_merging else getattr(backbone, "num_stages", 1)
    requested = requested_schedule(r, inflection, depth)
    rates = requested_keep_rates(keep_rate, depth)
    if not backbone.supports_token_merging:
        settings = {"r": r, "keep_rate": keep_rate, "freq_patchout": freq_patchout, "time_patchout": time_patchout}
        for key, active in (("r", any(requested)), ("keep_rate", min(rates) < 1), ("freq_patchout", freq_patchout), ("time_patchout", time_patchout)):
            if active:
                raise ValueError(
                    f"tome.{key}={settings[key]!r}: Token Merging does not apply to the {type(backbone).__name__} backbone "
                    "(no token reduction does: it needs global self-attention over patch tokens; windowed attention and "
                    f"CNNs have none): leave tome.{key} at its default"
                )
        return None
    f_dim, t_dim = backbone.token_grid
    freq_patchout = _check_lines(freq_patchout, "freq_patchout", f_dim, "frequency rows")
    time_patchout = _check_lines(time_patchout, "time_patchout", t_dim, "time columns")
    num_prefix, num_tokens = backbone.num_prefix_tokens, backbone.num_tokens
    if method == "prune":
        if any(requested):
            raise ValueError(f"tome.r={r!r} merges tokens, which tome.method=prune does not: set tome.r=0 and the tome.keep_rate to keep")
        schedule = rates
    else:
        if min(rates) < 1:
            raise ValueError(f"tome.keep_rate={keep_rate!r} applies to tome.method=prune, not {method}: set tome.keep_rate=1.0")
        if method == "tome":
            mergeable = num_tokens - num_prefix
            if max(requested) > mergeable:
                raise ValueError(
                    f"tome.r asks for {max(requested)} merges in one layer but the backbone has only {mergeable} patch tokens "
                    f"(schedule {requested})"
                )
            schedule = capped_schedule(requested, num_tokens, num_prefix)
        else:
            if max(requested) > t_dim:
                raise ValueError(
                    f"tome.r asks for {max(requested)} time-column merges in one layer but the patch grid has only {t_dim} "
                    f"time columns (tome.method=temporal; schedule {requested})"
                )
            schedule = requested
    reduces = any(amount < 1 for amount in schedule) if method == "prune" else any(schedule)
    if not reduces and not freq_patchout and not time_patchout:
        return None
    return TokenReduction(
        method, list(schedule), num_tokens, num_prefix, (f_dim, t_dim), prop_attn, trace_source, freq_patchout, time_patchout
    )


def install_reduction(backbone: nn.Module, reduction: TokenReduction | None) -> TokenReduction | None:
    """Sets the reduction `backbone` runs with (None: the plain model); returns it."""
    if reduction is not None:
        if len(reduction.schedule) != backbone.depth or reduction.num_tokens != backbone.num_tokens:
            raise ValueError(
                f"the reduction was planned for {len(reduction.schedule)} blocks and {reduction.num_tokens} tokens, "
                f"the backbone has {backbone.depth} and {backbone.num_tokens}"
            )
    backbone.token_reduction = reduction
    return reduction


def apply_tome(backbone: nn.Module, **settings) -> TokenReduction | None:
    """plan_reduction then install_reduction: `backbone` runs with the `tome.*` settings from now on."""
    reduction = plan_reduction(backbone, **settings)
    if backbone.supports_token_merging:
        install_reduction(backbone, reduction)
    return reduction
