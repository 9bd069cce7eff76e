"""A timm ViT block run with Token Merging: attention (with proportional attention), merge, then MLP.

Uses the block's own submodules (norm1, attn.qkv/q_norm/k_norm/norm/proj, ls1/ls2, drop_path1/2,
norm2, mlp), so weights and state_dict keys are those of the plain AST.

Shapes (B = batch, N = tokens entering the block, D = embed_dim, h = heads, d = head_dim):
    x [B, N, D] -> [B, N - r, D];  size [B, N, 1] tokens' patch counts (None = all 1);
    source [B, N, N0] which input tokens each token holds (None = not traced).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block

from fast_ast.tome.merge import bipartite_soft_matching, merge_source, merge_wavg


def size_bias(size: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Proportional attention: size [B, N, 1] -> additive logit bias log(size) per key, [B, 1, 1, N]."""
    return size.log().to(dtype).transpose(1, 2).unsqueeze(1)


def attention_with_size(attn: torch.nn.Module, x: torch.Tensor, size: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """timm Attention's forward on the fused SDPA path, with log(size) added to every key's logits.

    x [B, N, D], size [B, N, 1] or None (no bias) -> (output [B, N, D], keys averaged over heads [B, N, d]).
    """
    batch, tokens, _ = x.shape
    gate = attn.gate(x).sigmoid() if attn.gate is not None else None
    q, k, v = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).unbind(2)  # [B, N, h, d]
    q, k = attn.q_norm(q), attn.k_norm(k)
    keys = k.mean(dim=2)  # [B, N, d], reduced in this layout: contiguous rows, cheap
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, h, N, d], the views timm's permute gives
    bias = None if size is None else size_bias(size, q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=attn.attn_drop.p if attn.training else 0.0)
    out = attn.norm(out.transpose(1, 2).reshape(batch, tokens, attn.attn_dim))
    if gate is not None:
        out = out * gate
    return attn.proj_drop(attn.proj(out)), keys


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
    out, keys = attention_with_size(block.attn, block.norm1(x), size if prop_attn else None)
    x = x + block.drop_path1(block.ls1(out))
    if r > 0:
        matching = bipartite_soft_matching(keys, r, num_protected)
        x, size = merge_wavg(matching, x, size)
        if source is not None:
            source = merge_source(matching, source)
    x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
    return x, size, source
