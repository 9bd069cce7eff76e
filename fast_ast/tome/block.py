"""A timm ViT block run with Token Merging: attention (with proportional attention), merge, then MLP.

Uses the block's own submodules (attention through fast_ast.backbones.attention; ls1/ls2, drop_path1/2,
norm1/2, mlp), so weights and state_dict keys are those of the plain AST.

Shapes (B = batch, N = tokens entering the block, D = embed_dim, h = heads, d = head_dim):
    x [B, N, D] -> [B, N - r, D];  size [B, N, 1] tokens' patch counts (None = all 1);
    source [B, N, N0] which input tokens each token holds (None = not traced).
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block

from fast_ast.backbones.attention import self_attention
from fast_ast.tome.merge import bipartite_soft_matching, merge_source, merge_wavg


def size_bias(size: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Proportional attention: size [B, N, 1] -> additive logit bias log(size) per key, [B, 1, 1, N]."""
    return size.log().to(dtype).transpose(1, 2).unsqueeze(1)


def tome_block_forward(
    block: Block,
    x: torch.Tensor,
    r: int,
    num_protected: int,
    size: torch.Tensor | None = None,
    source: torch.Tensor | None = None,
    prop_attn: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """One block: x [B, N, D] -> (x [B, N - r', D], size [B, N - r', 1], source [B, N - r', N0]).

    r' = min(r, half the mergeable tokens); the first `num_protected` tokens are never merged.
    With r = 0 nothing is merged and size/source come back unchanged.
    """
    bias = size_bias(size, x.dtype) if prop_attn and size is not None else None
    out, keys = self_attention(block.attn, block.norm1(x), bias)
    x = x + block.drop_path1(block.ls1(out))
    if r > 0:
        matching = bipartite_soft_matching(keys.mean(dim=2), r, num_protected)  # keys averaged over heads [B, N, d]
        x, size = merge_wavg(matching, x, size)
        if source is not None:
            source = merge_source(matching, source)
    x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
    return x, size, source
