"""Counting the tokens that enter each transformer block (with or without Token Merging)."""

from __future__ import annotations

import torch


@torch.inference_mode()
def tokens_per_layer(backbone: torch.nn.Module, features: torch.Tensor, reduction=None) -> list[int]:
    """features [B, T, F] -> number of tokens entering each block (read at every block's norm1), under
    `reduction` (a fast_ast.tome plan; None: the backbone's installed one); [] for a backbone without
    global-attention token blocks (a CNN, windowed attention)."""
    if not backbone.supports_token_merging:
        return []
    counts: list[int] = []
    hooks = [blk.norm1.register_forward_pre_hook(lambda m, args: counts.append(args[0].shape[1])) for blk in backbone.v.blocks]
    try:
        backbone(features) if reduction is None else backbone(features, reduction=reduction)
    finally:
        for hook in hooks:
            hook.remove()
    return counts
