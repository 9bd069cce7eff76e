"""Attention top-k token pruning with fusion (EViT, Liang et al., ICLR 2022), applied between a block's
attention and its MLP: keep the patch tokens the prefix tokens (cls, distillation) attend to most and
fuse the others into one token, their attention-weighted mean, appended after the kept ones.

Pure functions. Shapes (B = batch, N = tokens, P = prefix tokens, M = N - P patch tokens, k = kept,
h = heads, d = head_dim, C = channels):
    queries [B, P', h, d] (at least the P prefix rows), keys [B, N, h, d], bias [B, 1, 1, N] or None
    scores  [B, M]  attention of the prefix tokens to each patch token, averaged over heads and prefix rows
    x       [B, N, C] -> [B, P + k + 1, C]: prefix, the kept tokens in their original order, the fused token
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def kept_count(num_patches: int, keep_rate: float) -> int:
    """Patch tokens a layer keeps: ceil(keep_rate * M) of its M (keep_rate 1: all, nothing pruned)."""
    return min(num_patches, math.ceil(keep_rate * num_patches - 1e-9))


def prefix_attention(queries: torch.Tensor, keys: torch.Tensor, num_prefix: int, bias: torch.Tensor | None) -> torch.Tensor:
    """[B, M] mean attention probability of the first `num_prefix` queries to each patch key (softmax over all keys)."""
    q = queries[:, :num_prefix].transpose(1, 2)  # [B, h, P, d]
    k = keys.transpose(1, 2)  # [B, h, N, d]
    logits = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5  # [B, h, P, N]
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1).mean(dim=(1, 2))[:, num_prefix:]


@dataclass(frozen=True)
class Pruning:
    """Which patch tokens (indices into x[:, P:]) stay and which are fused, with the fusion weights.

    kept   [B, k]      ascending (the kept tokens keep their order)
    fused  [B, M - k]  the rest
    weight [B, M - k]  their attention scores (the fusion weights, not normalised)
    """

    num_prefix: int
    kept: torch.Tensor
    fused: torch.Tensor
    weight: torch.Tensor


def top_k_pruning(scores: torch.Tensor, keep: int, num_prefix: int) -> Pruning:
    """scores [B, M] -> the Pruning keeping the `keep` highest-scoring patch tokens (ties: the earlier token)."""
    with torch.no_grad():
        order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
        kept = torch.sort(order[:, :keep], dim=-1).values
        fused = order[:, keep:]
    return Pruning(num_prefix, kept, fused, scores.gather(1, fused))


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, N, C], index [B, K] -> [B, K, C]."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def prune_and_fuse(pruning: Pruning, x: torch.Tensor, reduce: str = "wmean") -> torch.Tensor:
    """x [B, N, C] -> [B, P + k + 1, C]: prefix, kept tokens, then the fused token, which is
    sum_i w_i x_i / sum_i w_i over the pruned tokens ("wmean", features) or sum_i x_i ("sum", sizes and sources)."""
    p = pruning.num_prefix
    patches = x[:, p:]
    pruned = gather_rows(patches, pruning.fused)  # [B, M - k, C]
    if reduce == "wmean":
        weight = pruning.weight.unsqueeze(-1).to(x.dtype)
        fused = (pruned * weight).sum(dim=1, keepdim=True) / weight.sum(dim=1, keepdim=True)
    else:
        fused = pruned.sum(dim=1, keepdim=True)
    return torch.cat((x[:, :p], gather_rows(patches, pruning.kept), fused), dim=1)
