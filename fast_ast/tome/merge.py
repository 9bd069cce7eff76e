"""Bipartite soft matching and the merges it drives (Token Merging, Bolya et al., ICLR 2023, Sec. 3).

Pure functions on token tensors. Shapes (B = batch, N = tokens, C = channels, P = protected prefix tokens):
    metric [B, N, C]   what similarity is measured on (the attention keys averaged over heads)
    x      [B, N, C]   any per-token tensor to merge (features, sizes [B, N, 1], sources [B, N, N0])
    result [B, N - r, C]  laid out as: the P protected tokens, the unmerged tokens of set A (original
                          order), then every token of set B (original order, merged tokens folded in).

Set A holds the mergeable tokens at even offsets after the prefix (P, P + 2, ...), set B those at odd
offsets (P + 1, P + 3, ...). Every A token is linked to its most similar B token (cosine similarity)
and the r A tokens with the most similar links are merged into their B partner.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Matching:
    """Which tokens merge, as indices into the two sets (A = x[:, P::2], B = x[:, P + 1::2]).

    kept_a   [B, |A| - r]  A tokens that stay, ascending
    merged_a [B, r]        A tokens merged away, most similar link first
    into_b   [B, r]        the B token each of merged_a is merged into
    """

    num_protected: int
    kept_a: torch.Tensor
    merged_a: torch.Tensor
    into_b: torch.Tensor

    @property
    def r(self) -> int:
        return self.merged_a.shape[1]


def max_merges(num_tokens: int, num_protected: int) -> int:
    """Most pairs one layer can merge: half of its mergeable (unprotected) tokens, rounded down."""
    return max(num_tokens - num_protected, 0) // 2


def bipartite_soft_matching(metric: torch.Tensor, r: int, num_protected: int) -> Matching:
    """metric [B, N, C] -> the Matching that merges min(r, max_merges(N, P)) pairs.

    The first `num_protected` tokens (cls, distillation) take no part: they are never merged.
    Selection is not differentiable (indices); gradients flow through the merged values instead.
    """
    r = min(r, max_merges(metric.shape[1], num_protected))
    if r == 0:  # nothing to merge (also when fewer than 2 mergeable tokens are left): the no-op matching
        batch, num_a = metric.shape[0], (metric.shape[1] - num_protected + 1) // 2
        kept = torch.arange(num_a, device=metric.device).expand(batch, -1)
        none = torch.zeros(batch, 0, dtype=torch.long, device=metric.device)
        return Matching(num_protected, kept, none, none)
    with torch.no_grad():
        metric = metric[:, num_protected:]
        metric = metric / metric.norm(dim=-1, keepdim=True)
        a, b = metric[:, ::2], metric[:, 1::2]
        scores = a @ b.transpose(1, 2)  # [B, |A|, |B|] cosine similarities
        best_score, best_b = scores.max(dim=-1)  # [B, |A|]
        order = torch.sort(best_score, dim=-1, descending=True, stable=True).indices
        merged_a = order[:, :r]
        kept_a = torch.sort(order[:, r:], dim=-1).values
        into_b = best_b.gather(1, merged_a)
    return Matching(num_protected, kept_a, merged_a, into_b)


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, N, C], index [B, K] -> x[b, index[b, k]] as [B, K, C]."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def merge_tokens(matching: Matching, x: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """x [B, N, C] -> [B, N - r, C]: each merged A token folded into its B token with `reduce`
    ("sum", "mean", "amax", ...; the B token itself counts, as torch.scatter_reduce(include_self=True))."""
    p = matching.num_protected
    prefix, a, b = x[:, :p], x[:, p::2], x[:, p + 1 :: 2]
    moved = gather_tokens(a, matching.merged_a)
    b = b.scatter_reduce(1, matching.into_b.unsqueeze(-1).expand(-1, -1, x.shape[-1]), moved, reduce=reduce)
    return torch.cat((prefix, gather_tokens(a, matching.kept_a), b), dim=1)


def merge_wavg(
    matching: Matching, x: torch.Tensor, size: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted average merge. x [B, N, C], size [B, N, 1] (None = all ones: every token one patch)
    -> (x [B, N - r, C], size [B, N - r, 1]): a merged token is sum(size_i * x_i) / sum(size_i).

    Written as an update of the B token, b + sum_i size_i * (a_i - b) / total_size, so that only the r
    moved rows are weighted: the full-width work is one gather and one concatenation.
    """
    if size is None:
        size = torch.ones_like(x[..., :1])
    p = matching.num_protected
    merged_size = gather_tokens(size[:, p::2], matching.merged_a)  # [B, r, 1]
    size = merge_tokens(matching, size, "sum")  # [B, N - r, 1]
    num_b = (x.shape[1] - p) // 2
    offset = size.shape[1] - num_b  # where set B starts in the merged layout
    into = matching.into_b + offset  # [B, r]
    total = size.gather(1, into.unsqueeze(-1))  # [B, r, 1] size of each destination after merging
    moved = gather_tokens(x[:, p::2], matching.merged_a)  # [B, r, C]
    partner = gather_tokens(x[:, p + 1 :: 2], matching.into_b)  # [B, r, C]
    delta = (moved - partner) * (merged_size / total)
    merged = torch.cat((x[:, :p], gather_tokens(x[:, p::2], matching.kept_a), x[:, p + 1 :: 2]), dim=1)
    merged.scatter_add_(1, into.unsqueeze(-1).expand(-1, -1, x.shape[-1]), delta)  # in place: cat keeps no copy
    return merged, size


def merge_source(matching: Matching, source: torch.Tensor) -> torch.Tensor:
    """Tracks which input tokens each token holds. source [B, N, N0] of 0/1 (identity before the first
    merge) -> [B, N - r, N0]; each row sums to that token's size."""
    return merge_tokens(matching, source, "sum")
