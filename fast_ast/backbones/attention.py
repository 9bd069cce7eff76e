"""Self-attention and the transformer block of timm's ViT, on the fused SDPA path, with what AST and
token reduction add. One block function serves every forward: plain, reduced, and the last-block readout.

Two extensions of timm's `Attention.forward`, using the module's own weights (qkv, q_norm, k_norm,
norm, proj, gate), so state_dict keys stay timm's:
- `bias`: an additive term on every query's logits for each key, e.g. proportional attention
  (log of each token's size, fast_ast.tome);
- `num_queries`: only the first n tokens are queries (keys and values still come from all N tokens).
  The last block of a classifier needs only the tokens its head reads (AST: cls + distillation), so
  `block_forward(..., num_queries=n)` computes block(x)[:, :n] without the other N - n rows: no query,
  attention, projection or MLP work for them (at 1214 tokens, 87% of the last block's FLOPs).

`block_forward` takes an optional `reduce(x, q, k) -> x'` run between attention and MLP, where token
reduction (merging, pruning) happens; the queries and keys it gets are the block's own.

Shapes (B = batch, N = tokens, n = queries, D = embed_dim, h = heads, d = head_dim):
    x [B, N, D], bias [B, 1, 1, N] or None -> output [B, n, D], queries [B, n, h, d], keys [B, N, h, d]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention, Block

Reduce = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def self_attention(
    attn: Attention, x: torch.Tensor, bias: torch.Tensor | None = None, num_queries: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x [B, N, D] -> (output [B, n, D] of the first n = num_queries (default N) tokens,
    queries [B, n, h, d], keys [B, N, h, d]) (queries and keys after q_norm / k_norm)."""
    batch, tokens, _ = x.shape
    heads, head_dim, width = attn.num_heads, attn.head_dim, attn.attn_dim
    if num_queries is None:
        num_queries = tokens
        q, k, v = attn.qkv(x).reshape(batch, tokens, 3, heads, head_dim).unbind(2)  # [B, N, h, d] each
    else:
        weight, qkv_bias = attn.qkv.weight, attn.qkv.bias  # [3 * width, D]: q rows, then k, then v
        q = F.linear(x[:, :num_queries], weight[:width], None if qkv_bias is None else qkv_bias[:width])
        q = q.reshape(batch, num_queries, heads, head_dim)
        kv = F.linear(x, weight[width:], None if qkv_bias is None else qkv_bias[width:])
        k, v = kv.reshape(batch, tokens, 2, heads, head_dim).unbind(2)
    q, k = attn.q_norm(q), attn.k_norm(k)
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),  # [B, h, *, d]: the views timm's permute gives
        attn_mask=bias, dropout_p=attn.attn_drop.p if attn.training else 0.0,
    )
    out = attn.norm(out.transpose(1, 2).reshape(batch, num_queries, width))
    if attn.gate is not None:
        out = out * attn.gate(x[:, :num_queries]).sigmoid()
    return attn.proj_drop(attn.proj(out)), q, k


def block_forward(
    block: Block,
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    num_queries: int | None = None,
    reduce: Reduce | None = None,
) -> torch.Tensor:
    """One timm ViT block: x [B, N, D] -> [B, N', D].

    Attention (with `bias` on the keys' logits), then `reduce` (N -> N' tokens) if given, then the MLP.
    num_queries = n: only the first n rows are computed (N' = n; block(x)[:, :n]).
    """
    out, q, k = self_attention(block.attn, block.norm1(x), bias, num_queries)
    x = x[:, : q.shape[1]] + block.drop_path1(block.ls1(out))
    if reduce is not None:
        x = reduce(x, q, k)
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
