"""Any timm ViT/DeiT by name as an audio backbone, built the way AST adapts DeiT.

`timm.create_model(timm_name, pretrained=False)` gives the transformer (blocks, final norm, cls and, for
distilled DeiTs, distillation token); as in AST, its patch embedding becomes a 1-channel convolution with
the model's patch size and AST's overlapping strides (fstride, tstride), and its positional embedding is
sized to that audio patch grid. Everything else is AST's (fast_ast.backbones.ast): the token layout, the
forward pass, Token Merging, the last-block readout and the frame output, with `num_prefix_tokens` leading
tokens (1 = cls for a ViT, 2 = cls + distillation for a distilled DeiT). `depth` keeps only the first
blocks (null: the named model's depth; small values for tests).

Shapes (B = batch, T = frames, F = mel bins, P = num_prefix_tokens, D = the model's embed_dim):
    input  [B, T, F]  -> tokens [B, P + f_dim * t_dim, D] -> logits [B, C] = mlp_head(pooled)
    pooling: cls (the class token), mean (all final tokens), cls_dist (only with a distillation token)

Pretrained weights: the named model's timm state dict (`model.pretrained_format=timm`), with AST's
resize rules (patch kernel summed over RGB, positional embedding fitted to the audio grid).
"""

from __future__ import annotations

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from fast_ast.backbones.ast import AST, POOLINGS, patch_grid
from fast_ast.backbones.base import Backbone

VIT_MODULES = ("vision_transformer", "deit")  # the timm modules whose models this backbone runs


def check_timm_vit(model: nn.Module, name: str) -> None:
    """Raises ValueError naming model.backbone.timm_name unless `model` is a ViT whose forward AST's loop reproduces."""
    where = f"model.backbone.timm_name={name!r}"
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"{where} is a {type(model).__name__}, not a timm VisionTransformer/DeiT")
    problems = []
    if model.cls_token is None:
        problems.append("it has no class token")
    if getattr(model, "num_reg_tokens", 0):
        problems.append("it has register tokens")
    if model.no_embed_class:
        problems.append("its positional embedding excludes the class token")
    if model.pos_embed is None:
        problems.append("it has no learned positional embedding")
    for part in ("norm_pre", "patch_drop", "fc_norm"):
        if not isinstance(getattr(model, part, nn.Identity()), nn.Identity):
            problems.append(f"it has a {part} layer")
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)}; use a plain ViT/DeiT (e.g. vit_small_patch16_224, deit_tiny_patch16_224)")


class ViT(AST):
    """A timm ViT/DeiT on the audio patch grid. `forward(x[B, T, F]) -> logits[B, num_classes]`."""

    def __init__(
        self,
        num_classes: int,
        input_fdim: int = 128,
        input_tdim: int = 1024,
        timm_name: str = "deit_tiny_patch16_224",
        depth: int | None = None,
        fstride: int = 10,
        tstride: int = 10,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        head_norm_eps: float = 1e-5,
        pooling: str = "cls",
    ):
        Backbone.__init__(self)
        if not timm.is_model(timm_name):
            raise ValueError(f"model.backbone.timm_name={timm_name!r} is not a timm model name (timm {timm.__version__})")
        if not timm.models.is_model_in_modules(timm_name, VIT_MODULES):
            raise ValueError(f"model.backbone.timm_name={timm_name!r} is not a timm ViT/DeiT (modules {VIT_MODULES})")
        if depth is not None and depth < 1:
            raise ValueError(f"model.backbone.depth must be >= 1 or null (the named model's depth), got {depth}")
        v = timm.create_model(
            timm_name,
            pretrained=False,
            num_classes=0,
            **({} if depth is None else {"depth": depth}),
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
        )
        check_timm_vit(v, timm_name)
        self.num_prefix_tokens = v.num_prefix_tokens
        if pooling not in POOLINGS or (pooling == "cls_dist" and self.num_prefix_tokens < 2):
            allowed = sorted(POOLINGS) if self.num_prefix_tokens == 2 else ["cls", "mean"]
            raise ValueError(
                f"model.backbone.pooling must be one of {allowed} for {timm_name} "
                f"({'cls_dist needs a distillation token' if pooling == 'cls_dist' else 'unknown pooling'}), got {pooling!r}"
            )
        self.timm_name, self.pooling, self.num_classes = timm_name, pooling, num_classes
        self.input_fdim, self.input_tdim = input_fdim, input_tdim
        self.patch_size = v.patch_embed.patch_size[0]
        if v.patch_embed.patch_size[0] != v.patch_embed.patch_size[1]:
            raise ValueError(f"model.backbone.timm_name={timm_name!r} has non-square patches {v.patch_embed.patch_size}")
        self.fstride, self.tstride = fstride, tstride
        self.grid = patch_grid(input_fdim, input_tdim, self.patch_size, fstride, tstride)
        self.num_heads = v.blocks[0].attn.num_heads
        embed_dim = v.embed_dim
        v.patch_embed.proj = nn.Conv2d(1, embed_dim, kernel_size=self.patch_size, stride=(fstride, tstride))
        v.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + self.num_patches, embed_dim))
        nn.init.trunc_normal_(v.pos_embed, std=0.02)
        self.v = v
        self.mlp_head = nn.Sequential(nn.LayerNorm(embed_dim, eps=head_norm_eps), nn.Linear(embed_dim, num_classes))
        self.token_reduction = None
