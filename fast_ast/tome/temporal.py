"""Order-preserving temporal merging (in the spirit of A-ToMe, Li et al., Interspeech 2023): merge only
neighbouring time columns of the patch grid, so the token grid stays a (freq, time) grid in time order
and frame outputs map back to input columns by a column index, without unmerging matrices.

The time columns are split like ToMe's sets: A = even columns (0, 2, ...), B = odd ones. Each A column
is linked to the more similar of its two neighbours (both are B columns), by the cosine similarity of
the columns' keys (all frequency rows concatenated); the r A columns with the most similar links are
merged into their neighbour, row by row (size-weighted means). A B column absorbs at most its two
neighbours, so every merged column is a contiguous run of input columns.

Pure functions. Shapes (B = batch, f = frequency rows, t = time columns, C = channels):
    metric  [B, f, t, C]   grid   [B, f, t, C] -> [B, f, t - r, C]
    target  [B, t]         the output column each input column goes to (ascending: order kept)
"""

from __future__ import annotations

import torch


def max_column_merges(columns: int) -> int:
    """Most column pairs one layer can merge: half the columns, rounded down."""
    return columns // 2


def neighbour_matching(metric: torch.Tensor, r: int) -> torch.Tensor:
    """metric [B, f, t, C] -> target [B, t]: output column of each input column after merging
    min(r, t // 2) A columns into their most similar neighbouring B column."""
    batch, _, columns, _ = metric.shape
    r = min(r, max_column_merges(columns))
    arange = torch.arange(columns, device=metric.device)
    if r == 0:
        return arange.expand(batch, -1)
    with torch.no_grad():
        flat = metric.transpose(1, 2).flatten(2)  # [B, t, f * C]
        flat = flat / flat.norm(dim=-1, keepdim=True)
        a = flat[:, 0::2]  # [B, |A|, .] columns 0, 2, 4, ...
        left = torch.full(a.shape[:2], -2.0, device=metric.device, dtype=flat.dtype)
        right = torch.full_like(left, -2.0)
        left[:, 1:] = (a[:, 1:] * flat[:, 1::2][:, : a.shape[1] - 1]).sum(-1)  # A_m with column 2m - 1
        num_right = flat[:, 1::2].shape[1]
        right[:, :num_right] = (a[:, :num_right] * flat[:, 1::2]).sum(-1)  # A_m with column 2m + 1
        best, go_right = torch.maximum(left, right), right >= left
        order = torch.sort(best, dim=-1, descending=True, stable=True).indices[:, :r]  # merged A columns
        merged = torch.zeros(batch, columns, dtype=torch.bool, device=metric.device)
        merged.scatter_(1, 2 * order, True)
        neighbour = 2 * torch.arange(a.shape[1], device=metric.device) + torch.where(go_right, 1, -1)  # [B, |A|]
        destination = arange.expand(batch, -1).clone()
        destination[:, 0::2] = torch.where(merged[:, 0::2], neighbour, destination[:, 0::2])
        kept = ~merged
        position = kept.long().cumsum(dim=1) - 1  # output index of every kept column
    return position.gather(1, destination)


def merge_columns(grid: torch.Tensor, target: torch.Tensor, columns: int) -> torch.Tensor:
    """grid [B, f, t, C] -> [B, f, columns, C]: each output column the sum of the input columns sent to it."""
    index = target.view(target.shape[0], 1, -1, 1).expand(-1, grid.shape[1], -1, grid.shape[-1])
    out = grid.new_zeros(grid.shape[0], grid.shape[1], columns, grid.shape[-1])
    return out.scatter_add(2, index, grid)


def merge_columns_wavg(
    grid: torch.Tensor, size: torch.Tensor, target: torch.Tensor, columns: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted mean merge: grid [B, f, t, C], size [B, f, t, 1] -> ([B, f, t', C], size [B, f, t', 1])."""
    total = merge_columns(size, target, columns)
    return merge_columns(grid * size.to(grid.dtype), target, columns) / total.to(grid.dtype), total
