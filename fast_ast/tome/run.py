"""One forward pass under a token reduction: the per-layer step AST's block loop calls between
attention and MLP (fast_ast.backbones.attention.block_forward), and the state it carries.

Shapes (B = batch, N = tokens now, N0 = tokens entering the first block, P = prefix tokens,
f x t = the patch grid now, D = embed_dim):
    size    [B, N, 1]   patches each token stands for (None = all 1, nothing reduced yet)
    source  [B, N, N0]  0/1: which first-block tokens each token holds (trace_source, else None)
    columns [B, t0]     temporal merging: the time column each first-block column is in now
"""

from __future__ import annotations

from functools import partial

import torch

from fast_ast.backbones.attention import Reduce
from fast_ast.tome.merge import bipartite_soft_matching, merge_source, merge_wavg
from fast_ast.tome.patchout import kept_lines, structured_patchout
from fast_ast.tome.prune import kept_count, prefix_attention, prune_and_fuse, top_k_pruning
from fast_ast.tome.temporal import max_column_merges, merge_columns, merge_columns_wavg, neighbour_matching


def size_bias(size: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Proportional attention: size [B, N, 1] -> additive logit bias log(size) per key, [B, 1, 1, N]."""
    return size.log().to(dtype).transpose(1, 2).unsqueeze(1)


class ReductionRun:
    """State of one pass through the blocks under `reduction` (a fast_ast.tome.apply.TokenReduction).

    Built on the embedded tokens [B, N, D]; in training it applies the reduction's patchout first
    (`tokens` holds the result, `grid` the grid after it).
    """

    def __init__(self, reduction, tokens: torch.Tensor, training: bool):
        self.reduction = reduction
        self.num_prefix = reduction.num_prefix
        self.grid = reduction.grid
        if training and (reduction.freq_patchout or reduction.time_patchout):
            f_dim, t_dim = self.grid
            rows = kept_lines(f_dim, reduction.freq_patchout, tokens.device)
            columns = kept_lines(t_dim, reduction.time_patchout, tokens.device)
            tokens = structured_patchout(tokens, self.grid, self.num_prefix, rows, columns)
            self.grid = (len(rows), len(columns))
        self.tokens = tokens
        self.input_grid = self.grid  # the grid the first block sees (the source's columns)
        batch, count, _ = tokens.shape
        self.size: torch.Tensor | None = None
        self.source = torch.eye(count, device=tokens.device, dtype=tokens.dtype).expand(batch, -1, -1) if reduction.trace_source else None
        self.columns = torch.arange(self.grid[1], device=tokens.device).expand(batch, -1) if reduction.method == "temporal" else None

    def bias(self, dtype: torch.dtype) -> torch.Tensor | None:
        """The attention bias of the next block: log(size) with proportional attention, once sizes differ from 1."""
        if self.reduction.prop_attn and self.size is not None:
            return size_bias(self.size, dtype)
        return None

    def step(self, layer: int) -> Reduce | None:
        """Block `layer`'s reduction step x, q, k -> x' (None: the block reduces nothing)."""
        amount = self.reduction.schedule[layer]
        method = self.reduction.method
        if method == "tome" and amount > 0:
            return partial(self.merge, amount)
        if method == "temporal" and amount > 0:
            return partial(self.merge_time, amount)
        if method == "prune" and amount < 1.0:
            return partial(self.prune, amount)
        return None

    # ---- the steps: x [B, N, D] after attention, the block's queries [B, N, h, d] and keys [B, N, h, d]
    def merge(self, r: int, x: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """ToMe: bipartite soft matching on the keys averaged over heads, size-weighted merge."""
        matching = bipartite_soft_matching(keys.mean(dim=2), r, self.num_prefix)
        x, self.size = merge_wavg(matching, x, self.size)
        if self.source is not None:
            self.source = merge_source(matching, self.source)
        return x

    def prune(self, keep_rate: float, x: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """EViT: keep the patch tokens the prefix attends to most, fuse the rest into one token."""
        p = self.num_prefix
        keep = kept_count(x.shape[1] - p, keep_rate)
        if keep == x.shape[1] - p:
            return x
        pruning = top_k_pruning(prefix_attention(queries, keys, p, self.bias(queries.dtype)), keep, p)
        size = torch.ones_like(x[..., :1]) if self.size is None else self.size
        self.size = prune_and_fuse(pruning, size, "sum")
        if self.source is not None:
            self.source = prune_and_fuse(pruning, self.source, "sum")
        return prune_and_fuse(pruning, x)

    def merge_time(self, r: int, x: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Temporal merging: r neighbouring time-column pairs, order kept."""
        p, (f_dim, t_dim) = self.num_prefix, self.grid
        merged_t = t_dim - min(r, max_column_merges(t_dim))
        if merged_t == t_dim:
            return x
        batch = x.shape[0]
        metric = keys.mean(dim=2)[:, p:].reshape(batch, f_dim, t_dim, -1)
        target = neighbour_matching(metric, r)  # [B, t]
        size = torch.ones_like(x[..., :1]) if self.size is None else self.size
        grid, grid_size = merge_columns_wavg(
            x[:, p:].reshape(batch, f_dim, t_dim, -1), size[:, p:].reshape(batch, f_dim, t_dim, 1), target, merged_t
        )
        self.size = torch.cat((size[:, :p], grid_size.flatten(1, 2)), dim=1)
        if self.source is not None:
            held = merge_columns(self.source[:, p:].reshape(batch, f_dim, t_dim, -1), target, merged_t)
            self.source = torch.cat((self.source[:, :p], held.flatten(1, 2)), dim=1)
        self.columns = target.gather(1, self.columns)
        self.grid = (f_dim, merged_t)
        return torch.cat((x[:, :p], grid.flatten(1, 2)), dim=1)

    def keep_rows(self, rows: int) -> None:
        """After a readout block that computed only the first `rows` tokens."""
        self.size = None if self.size is None else self.size[:, :rows]
        self.source = None if self.source is None else self.source[:, :rows]
