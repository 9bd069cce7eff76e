"""Audio Spectrogram Transformer (Gong, Chung, Glass, Interspeech 2021) on timm's DeiT modules.

The parameter layout is the original AST's (`v.*` = a timm distilled DeiT, `mlp_head.*`), so
original checkpoints load by stripping their `module.` prefix. The forward pass is written out
here (not timm's) because the patch grid is strided and token reduction (fast_ast.tome) runs inside
the one block loop (`run_blocks`: every block through fast_ast.backbones.attention.block_forward).

Shapes (B = batch, T = frames, F = mel bins, N = 2 + f_dim * t_dim tokens, D = embed_dim):
    input  [B, T, F]  normalised log-mel filterbanks
    tokens [B, N, D]  cls, distillation, then patches in (freq, time) row-major order
    output [B, C]     logits = mlp_head(pooled) after the final LayerNorm, pooled by `pooling`:
                      cls_dist (the original's (cls + dist) / 2), cls, or mean (over all final tokens)
    frames [B, t_dim, D]  forward_frames: the patch tokens averaged over the f_dim frequency rows, one per
                      time column (temporal merging: each column takes its merged column; ToMe and
                      pruning: the final tokens first unmerged with source tracking)

The head's LayerNorm has its own epsilon (`head_norm_eps`): the original AST builds `mlp_head` with
PyTorch's default 1e-5 and uses timm's 1e-6 (`norm_eps`) in the blocks and the final norm, while
transformers' AST uses its one `layer_norm_eps` for both.

`forward` runs the last block for the rows its pooling reads only (cls and distillation, or cls;
fast_ast.backbones.attention): the same logits, to float rounding, as the full block, for about 1/depth
less compute. Mean pooling reads every token, so the last block runs whole.
"""

from __future__ import annotations

from functools import partial

import torch
from timm.models.deit import VisionTransformerDistilled
from torch import nn

from fast_ast.backbones.attention import block_forward
from fast_ast.backbones.base import Backbone
from fast_ast.tome.apply import TokenReduction
from fast_ast.tome.run import ReductionRun

NUM_PREFIX_TOKENS = 2  # cls + distillation token; never merged, always first
POOLINGS = {"cls_dist": 2, "cls": 1, "mean": None}  # pooling -> leading tokens the head reads (None: all)


def patch_grid(input_fdim: int, input_tdim: int, patch_size: int, fstride: int, tstride: int) -> tuple[int, int]:
    """(f_dim, t_dim): number of patch rows (frequency) and columns (time) of the strided conv."""
    if input_fdim < patch_size or input_tdim < patch_size:
        raise ValueError(
            f"input of {input_tdim} frames x {input_fdim} mel bins is smaller than one {patch_size}x{patch_size} patch"
        )
    return (input_fdim - patch_size) // fstride + 1, (input_tdim - patch_size) // tstride + 1


def unmerge_tokens(tokens: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """tokens [B, N', D] and ToMe source [B, N', N] (0/1) -> [B, N, D]: each input token gets its final token."""
    return source.transpose(1, 2).to(tokens.dtype) @ tokens


def time_tokens(tokens: torch.Tensor, grid: tuple[int, int], num_prefix: int = NUM_PREFIX_TOKENS) -> torch.Tensor:
    """[B, P + f_dim * t_dim, D] (patches in (freq, time) row-major order) -> [B, t_dim, D] mean over frequency."""
    f_dim, t_dim = grid
    patches = tokens[:, num_prefix:]
    return patches.reshape(patches.shape[0], f_dim, t_dim, patches.shape[-1]).mean(dim=1)


class AST(Backbone):
    """AST classifier. `forward(x[B, T, F]) -> logits[B, num_classes]`."""

    supports_token_merging = True
    num_prefix_tokens = NUM_PREFIX_TOKENS  # tokens before the patches (token reduction never touches them)

    def __init__(
        self,
        num_classes: int,
        input_fdim: int = 128,
        input_tdim: int = 1024,
        patch_size: int = 16,
        fstride: int = 10,
        tstride: int = 10,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        head_norm_eps: float = 1e-5,
        pooling: str = "cls_dist",
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.backbone.pooling must be one of {sorted(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.num_classes = num_classes
        self.input_fdim, self.input_tdim = input_fdim, input_tdim
        self.patch_size, self.fstride, self.tstride = patch_size, fstride, tstride
        self.grid = patch_grid(input_fdim, input_tdim, patch_size, fstride, tstride)
        self.num_heads = num_heads
        self.v = VisionTransformerDistilled(
            img_size=(input_fdim, input_tdim),
            patch_size=patch_size,
            in_chans=1,
            num_classes=0,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=True,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            norm_layer=partial(nn.LayerNorm, eps=norm_eps),
        )
        # Overlapping patches: AST's strided patch embedding and a pos-embed sized to its grid.
        self.v.patch_embed.proj = nn.Conv2d(1, embed_dim, kernel_size=patch_size, stride=(fstride, tstride))
        self.v.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + self.num_patches, embed_dim))
        nn.init.trunc_normal_(self.v.pos_embed, std=0.02)
        self.mlp_head = nn.Sequential(nn.LayerNorm(embed_dim, eps=head_norm_eps), nn.Linear(embed_dim, num_classes))
        # Token reduction is a runtime setting (fast_ast.tome.apply_tome), None = plain AST.
        self.token_reduction: TokenReduction | None = None

    @property
    def embed_dim(self) -> int:
        return self.v.embed_dim

    @property
    def depth(self) -> int:
        return len(self.v.blocks)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.num_patches

    # ---- the backbone contract (fast_ast.backbones.base) -------------------------------------------
    @property
    def classifier(self) -> nn.Module:
        return self.mlp_head

    @property
    def token_grid(self) -> tuple[int, int]:
        return self.grid

    @property
    def num_stages(self) -> int:
        return self.depth

    @property
    def frame_dim(self) -> int:
        return self.embed_dim

    @property
    def num_frames(self) -> int:
        return self.grid[1]

    @property
    def frame_hop(self) -> float:
        return float(self.tstride)

    @property
    def frame_offset(self) -> float:
        return (self.patch_size - 1) / 2

    def trainable_tail(self, last_n: int) -> list[nn.Module]:
        """mlp_head; with last_n > 0 also the final norm and the last `last_n` blocks."""
        if last_n == 0:
            return [self.mlp_head]
        return [self.mlp_head, self.v.norm, *self.v.blocks[self.depth - last_n :]]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] features -> [B, N, D] tokens with positional embedding (cls[, distillation], then patches)."""
        x = x.unsqueeze(1).transpose(2, 3)  # [B, 1, F, T]
        x = self.v.patch_embed.proj(x).flatten(2).transpose(1, 2)  # [B, f_dim * t_dim, D]
        prefix = self.v.cls_token if self.num_prefix_tokens == 1 else torch.cat((self.v.cls_token, self.v.dist_token), dim=1)
        x = torch.cat((prefix.expand(x.shape[0], -1, -1), x), dim=1) + self.v.pos_embed
        return self.v.pos_drop(x)

    def run_blocks(
        self, x: torch.Tensor, prefix_only: bool = False, reduction: TokenReduction | None = None
    ) -> tuple[torch.Tensor, ReductionRun | None]:
        """[B, T, F] -> ([B, N', D] normalised final tokens, the reduction's run state or None).

        The one block loop: every block through `block_forward`, with the reduction's step between
        attention and MLP (`reduction`, default the installed `token_reduction`; None: plain).
        prefix_only: the last block computes only the leading tokens `head` reads (cls and distillation,
        or cls: N' = 2 or 1; every token for mean pooling), and reduces nothing (it would only touch
        rows nobody reads).
        """
        reduction = self.token_reduction if reduction is None else reduction
        x = self.embed(x)
        run = None
        if reduction is not None:
            if len(reduction.schedule) != self.depth:
                raise ValueError(f"the token reduction has {len(reduction.schedule)} layers, the backbone {self.depth} blocks")
            run = ReductionRun(reduction, x, self.training)
            x = run.tokens
        readout = POOLINGS[self.pooling] if prefix_only else None
        for layer, block in enumerate(self.v.blocks):
            queries = readout if layer == self.depth - 1 else None
            if run is None:
                x = block_forward(block, x, num_queries=queries)
            else:
                x = block_forward(block, x, run.bias(x.dtype), queries, None if queries is not None else run.step(layer))
        if run is not None:
            if readout is not None:
                run.keep_rows(readout)
            if reduction.trace_source:
                reduction.source = run.source
                reduction.size = torch.ones_like(x[..., :1]) if run.size is None else run.size
        return self.v.norm(x), run

    def forward_features(self, x: torch.Tensor, prefix_only: bool = False, reduction: TokenReduction | None = None) -> torch.Tensor:
        """[B, T, F] -> [B, N', D] normalised final tokens (N' < N when tokens were reduced); see run_blocks."""
        return self.run_blocks(x, prefix_only, reduction)[0]

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, N', D] -> [B, C] logits: mlp_head of the pooled tokens."""
        if self.pooling == "cls_dist":
            return self.mlp_head((tokens[:, 0] + tokens[:, 1]) / 2)
        if self.pooling == "cls":
            return self.mlp_head(tokens[:, 0])
        return self.mlp_head(tokens.mean(dim=1))

    def forward(self, x: torch.Tensor, reduction: TokenReduction | None = None) -> torch.Tensor:
        return self.head(self.forward_features(x, prefix_only=True, reduction=reduction))

    def forward_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, F] -> (logits [B, C], frames [B, t_dim, D]: patch tokens averaged over frequency).

        Temporal merging keeps the grid in time order: each input column takes the column it was merged
        into. Token Merging and pruning reorder tokens: the final tokens are unmerged first, which needs
        source tracking on (EventClassifier sets tome.trace_source).
        """
        tokens, run = self.run_blocks(x)
        logits = self.head(tokens)
        if run is None:
            return logits, time_tokens(tokens, self.grid, self.num_prefix_tokens)
        if run.columns is not None:
            frames = time_tokens(tokens, run.grid, self.num_prefix_tokens)  # [B, t', D]
            return logits, frames.gather(1, run.columns.unsqueeze(-1).expand(-1, -1, frames.shape[-1]))
        if run.source is None:
            raise ValueError(f"frame outputs under tome.method={run.reduction.method} need tome.trace_source=true")
        return logits, time_tokens(unmerge_tokens(tokens, run.source), run.input_grid, self.num_prefix_tokens)
