"""Structured patchout (PaSST, Koutini et al., Interspeech 2022), in training only: drop whole frequency
rows and time columns of the patch grid after the positional embedding, the same ones for the whole batch.

Shapes (B = batch, P = prefix tokens, f x t = patch grid, D = embed_dim):
    tokens [B, P + f * t, D] (patches in (freq, time) row-major order) -> [B, P + (f - df) * (t - dt), D]
"""

from __future__ import annotations

import torch


def kept_lines(total: int, dropped: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """[total - dropped] ascending random indices of the rows (or columns) that stay."""
    return torch.randperm(total, device=device, generator=generator)[: total - dropped].sort().values


def structured_patchout(
    tokens: torch.Tensor, grid: tuple[int, int], num_prefix: int, rows: torch.Tensor, columns: torch.Tensor
) -> torch.Tensor:
    """Keeps the patch tokens of frequency rows `rows` and time columns `columns` (both ascending)."""
    f_dim, t_dim = grid
    patches = tokens[:, num_prefix:].reshape(tokens.shape[0], f_dim, t_dim, tokens.shape[-1])
    patches = patches.index_select(1, rows).index_select(2, columns)
    return torch.cat((tokens[:, :num_prefix], patches.flatten(1, 2)), dim=1)
