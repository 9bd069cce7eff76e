"""Switching Token Merging on or off on an AST backbone (the `tome` config group).

`apply_tome(backbone, **cfg.tome)` sets `backbone.token_merging`, the hook AST.forward_features calls
as `token_merging(blocks, x[B, N, D]) -> x[B, N', D]`; r = 0 in every layer clears it (None), so the
plain AST path runs with no ToMe code in it. It only changes the forward pass, never the weights:
a model trained without merging can be evaluated with any r, and the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fast_ast.backbones.ast import NUM_PREFIX_TOKENS
from fast_ast.backbones.attention import readout_block_forward
from fast_ast.tome.block import size_bias, tome_block_forward
from fast_ast.tome.schedule import capped_schedule, requested_schedule, tokens_per_layer


class TokenMerging:
    """The `token_merging` hook: runs the blocks with schedule[i] merges in block i.

    After a forward with trace_source=True, `source` holds [B, N', N] (0/1: which input tokens, cls and
    distillation included, each final token absorbed) and `size` the final token sizes [B, N', 1]
    (all final tokens after `forward_features`; the cls and distillation rows only after `forward`).
    """

    def __init__(
        self,
        schedule: Sequence[int],
        num_tokens: int,
        prop_attn: bool = True,
        trace_source: bool = False,
        num_prefix_tokens: int = NUM_PREFIX_TOKENS,
    ):
        self.schedule = list(schedule)
        self.num_prefix_tokens = num_prefix_tokens  # leading tokens never merged (AST: cls + dist; ViT: cls)
        self.num_tokens = num_tokens
        self.prop_attn = prop_attn
        self.trace_source = trace_source
        self.source: torch.Tensor | None = None
        self.size: torch.Tensor | None = None

    @property
    def tokens_per_layer(self) -> list[int]:
        return tokens_per_layer(self.num_tokens, self.schedule)

    def __call__(self, blocks: nn.Sequential, x: torch.Tensor, readout: int | None = None) -> torch.Tensor:
        """x [B, N, D] -> [B, N', D]; readout = n: the last block computes its first n tokens only (N' = n)."""
        if len(blocks) != len(self.schedule):
            raise ValueError(f"ToMe schedule has {len(self.schedule)} layers, the backbone {len(blocks)} blocks")
        batch, tokens, _ = x.shape
        size = None
        source = torch.eye(tokens, device=x.device, dtype=x.dtype).expand(batch, -1, -1) if self.trace_source else None
        layers = list(zip(blocks, self.schedule))
        merged = layers if readout is None else layers[:-1]
        for block, r in merged:
            x, size, source = tome_block_forward(block, x, r, self.num_prefix_tokens, size, source, self.prop_attn)
        if readout is not None:  # the last layer's merges would only touch rows nobody reads
            bias = size_bias(size, x.dtype) if self.prop_attn and size is not None else None
            x = readout_block_forward(blocks[-1], x, readout, bias)
            size = None if size is None else size[:, :readout]
            source = None if source is None else source[:, :readout]
        if self.trace_source:
            self.source = source
            self.size = torch.ones_like(x[..., :1]) if size is None else size
        return x

    def __repr__(self) -> str:
        return f"TokenMerging(schedule={self.schedule}, prop_attn={self.prop_attn}, trace_source={self.trace_source})"


def apply_tome(
    backbone: nn.Module,
    r: int | Sequence[int] = 0,
    inflection: float | None = 0.0,
    prop_attn: bool = True,
    trace_source: bool = False,
) -> TokenMerging | None:
    """Sets (or clears, when no layer merges) `backbone.token_merging`; returns it.

    r: pairs merged per layer (int), ToMe's (r, inflection) schedule, or one value per layer (list).
    Each layer merges at most half its mergeable tokens; asking for more than the backbone's patch
    tokens in any layer is a configuration error.
    """
    for key, value in (("prop_attn", prop_attn), ("trace_source", trace_source)):
        if not isinstance(value, bool):
            raise ValueError(f"tome.{key} must be true or false, got {value!r}")
    if not backbone.supports_token_merging:
        depth = getattr(backbone, "num_stages", 1)
        if any(requested_schedule(r, inflection, depth) if not isinstance(r, Sequence) else r):
            raise ValueError(
                f"tome.r={r!r}: Token Merging does not apply to the {type(backbone).__name__} backbone "
                "(it needs global self-attention over patch tokens; windowed attention and CNNs have none): set tome.r=0"
            )
        return None
    requested = requested_schedule(r, inflection, backbone.depth)
    prefix = backbone.num_prefix_tokens
    mergeable = backbone.num_tokens - prefix
    if max(requested) > mergeable:
        raise ValueError(
            f"tome.r asks for {max(requested)} merges in one layer but the backbone has only {mergeable} patch tokens "
            f"(schedule {requested})"
        )
    schedule = capped_schedule(requested, backbone.num_tokens, prefix)
    if not any(schedule):
        backbone.token_merging = None
    else:
        backbone.token_merging = TokenMerging(schedule, backbone.num_tokens, prop_attn, trace_source, prefix)
    return backbone.token_merging
