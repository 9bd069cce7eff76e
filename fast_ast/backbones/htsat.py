"""HTS-AT (Chen et al., ICASSP 2022): a hierarchical Swin-Transformer on the folded mel spectrogram with a
token-semantic module, on timm's Swin stages (timm.models.swin_transformer.SwinTransformerStage).

Shapes (B = batch, T = frames, F = mel bins, S = spec_size, r = freq_ratio = S / F, C = classes):
    input     [B, T, F]         normalised log-mel features; bn0 (BatchNorm over the F bins, as HTS-AT)
    image     [B, 1, S, S]      time-frequency folding: the T frames (bicubically stretched to r * S when
                                T < r * S, as HTS-AT does) cut into r chunks of S frames, the chunks stacked
                                along frequency: image[r_i * F + f, t] = x[r_i * S + t, f]
    tokens    [B, S/p, S/p, D]  patch embedding (p = patch_stride) -> Swin stages (windowed attention,
                                patch merging between stages) -> [B, h, w, D * 2^(L-1)], h = w = S / p / 2^(L-1)
    frames    [B, T', C]        token-semantic module: the h rows unfolded back into time (T' = r * w, time
                                order), a (h / r) x 3 convolution to per-class frame logits (frames_are_logits)
    logits    [B, C]            the mean of the frame logits over time (HTS-AT's clip output before its sigmoid)

The paper's HTS-AT: 64 mel bins x 1024 frames, S 256, patch 4, window 8, embed 96, depths 2,2,6,2, heads
4,8,16,32 (~28.8M parameters at 527 classes): conf/model/backbone/htsat.yaml. Token Merging does not apply:
Swin attends within local windows over a fixed token lattice (and merges patches itself), so ToMe's global
bipartite matching has nothing to run on (`supports_token_merging = False`; tome.r > 0 is an error).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformerStage
from torch import nn

from fast_ast.backbones.base import Backbone


def fold_spectrogram(x: torch.Tensor, spec_size: int) -> torch.Tensor:
    """[B, T, F] -> [B, 1, S, S]: r = S / F chunks of S frames stacked along frequency (T stretched to r * S)."""
    batch, frames, bins = x.shape
    ratio = spec_size // bins
    image = x.unsqueeze(1)  # [B, 1, T, F]
    if frames < ratio * spec_size:
        image = F.interpolate(image, (ratio * spec_size, bins), mode="bicubic", align_corners=True)
    image = image.transpose(2, 3).reshape(batch, 1, bins, ratio, spec_size)  # [B, 1, F, r, S]
    return image.transpose(2, 3).reshape(batch, 1, ratio * bins, spec_size)


def unfold_rows(fmap: torch.Tensor, ratio: int) -> torch.Tensor:
    """[B, D, h, w] -> [B, D, h / r, r * w]: the r row groups (time chunks) put back side by side in time."""
    batch, dim, rows, columns = fmap.shape
    grouped = fmap.reshape(batch, dim, ratio, rows // ratio, columns).transpose(2, 3)  # [B, D, h/r, r, w]
    return grouped.reshape(batch, dim, rows // ratio, ratio * columns)


class ClipPooling(nn.Module):
    """HTS-AT's clip output: frame logits [B, T', C] -> [B, C] mean over time."""

    def forward(self, frame_logits: torch.Tensor) -> torch.Tensor:
        return frame_logits.mean(dim=1)


class SpectrogramPatches(nn.Module):
    """[B, 1, S, S] -> [B, S/stride, S/stride, D]: a strided convolution, then LayerNorm (HTS-AT's PatchEmbed)."""

    def __init__(self, patch_size: int, patch_stride: int, embed_dim: int, norm_layer):
        super().__init__()
        padding = (patch_size - patch_stride) // 2
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=patch_size, stride=patch_stride, padding=padding)
        self.norm = norm_layer(embed_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(image).permute(0, 2, 3, 1))


class HTSAT(Backbone):
    """HTS-AT. `forward(x[B, T, F]) -> logits[B, C]`; `forward_frames` adds frame logits [B, T', C]."""

    frames_are_logits = True

    def __init__(
        self,
        num_classes: int,
        input_fdim: int = 64,
        input_tdim: int = 1024,
        spec_size: int = 256,
        patch_size: int = 4,
        patch_stride: int = 4,
        embed_dim: int = 96,
        depths: list[int] = (2, 2, 6, 2),
        num_heads: list[int] = (4, 8, 16, 32),
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        depths, num_heads = list(depths), list(num_heads)
        check_geometry(input_fdim, input_tdim, spec_size, patch_size, patch_stride, depths, num_heads, window_size)
        self.num_classes = num_classes
        self.input_fdim, self.input_tdim, self.spec_size = input_fdim, input_tdim, spec_size
        self.freq_ratio = spec_size // input_fdim
        self.grid = (spec_size // patch_stride, spec_size // patch_stride)
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        self.bn0 = nn.BatchNorm2d(input_fdim)
        self.patch_embed = SpectrogramPatches(patch_size, patch_stride, embed_dim, norm_layer)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        stages = []
        for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            side = self.grid[0] // 2 ** max(i - 1, 0)  # the stage's input resolution (stage i > 0 merges 2x2 first)
            stages.append(
                SwinTransformerStage(
                    dim=embed_dim * 2 ** max(i - 1, 0),
                    out_dim=embed_dim * 2**i,
                    input_resolution=(side, side),
                    depth=depth,
                    downsample=i > 0,
                    num_heads=heads,
                    window_size=window_size,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=True,
                    proj_drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=rates[sum(depths[:i]) : sum(depths[: i + 1])],
                    norm_layer=norm_layer,
                )
            )
        self.layers = nn.Sequential(*stages)
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = norm_layer(self.num_features)
        self.final_grid = (self.grid[0] // 2 ** (len(depths) - 1), self.grid[1] // 2 ** (len(depths) - 1))
        rows_per_chunk = self.final_grid[0] // self.freq_ratio
        self.tscam_conv = nn.Conv2d(self.num_features, num_classes, kernel_size=(rows_per_chunk, 3), padding=(0, 1))
        self.clip_pooling = ClipPooling()
        self.apply(init_weights)

    # ---- the backbone contract (fast_ast.backbones.base) -------------------------------------------
    @property
    def classifier(self) -> nn.Module:
        """The clip pooling of the token-semantic frame logits (its class-dependent weights: tscam_conv)."""
        return self.clip_pooling

    @property
    def token_grid(self) -> tuple[int, int]:
        """Patch rows x columns of the folded S x S image (rows mix frequency and time chunks)."""
        return self.grid

    @property
    def num_stages(self) -> int:
        return len(self.layers)

    @property
    def frame_dim(self) -> int:
        return self.num_classes

    @property
    def num_frames(self) -> int:
        return self.freq_ratio * self.final_grid[1]

    @property
    def frame_hop(self) -> float:
        return self.input_tdim / self.num_frames

    @property
    def frame_offset(self) -> float:
        return (self.frame_hop - 1) / 2

    def trainable_tail(self, last_n: int) -> list[nn.Module]:
        """The token-semantic module; with last_n > 0 also the final norm and the last `last_n` Swin stages."""
        head = [self.tscam_conv, self.clip_pooling]
        if last_n == 0:
            return head
        return [*head, self.norm, *self.layers[len(self.layers) - last_n :]]

    # ---- forward ---------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, D_L, h, w] normalised final feature map of the folded image."""
        x = self.bn0(x.transpose(1, 2).unsqueeze(-1)).squeeze(-1).transpose(1, 2)  # BatchNorm over the F bins
        tokens = self.layers(self.pos_drop(self.patch_embed(fold_spectrogram(x, self.spec_size))))
        return self.norm(tokens).permute(0, 3, 1, 2)

    def frame_logits(self, fmap: torch.Tensor) -> torch.Tensor:
        """[B, D_L, h, w] -> [B, T', C] per-class frame logits in time order."""
        return self.tscam_conv(unfold_rows(fmap, self.freq_ratio)).flatten(2).transpose(1, 2)

    def forward_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.frame_logits(self.forward_features(x))
        return self.clip_pooling(frames), frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_frames(x)[0]


def init_weights(module: nn.Module) -> None:
    """HTS-AT's initialisation: truncated-normal Linear weights (std 0.02), zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def check_geometry(
    input_fdim: int,
    input_tdim: int,
    spec_size: int,
    patch_size: int,
    patch_stride: int,
    depths: list[int],
    num_heads: list[int],
    window_size: int,
) -> None:
    """ValueError naming the key when the features or sizes do not fit HTS-AT's folding and stages."""
    if len(depths) != len(num_heads) or not depths:
        raise ValueError(f"model.backbone.depths {depths} and num_heads {num_heads} must have one entry per stage")
    if spec_size % input_fdim:
        raise ValueError(
            f"data.features.num_mel_bins={input_fdim} must divide model.backbone.spec_size={spec_size} "
            f"(HTS-AT stacks spec_size / num_mel_bins time chunks along frequency; the paper: 64 bins, spec_size 256)"
        )
    ratio = spec_size // input_fdim
    if input_tdim > ratio * spec_size:
        raise ValueError(
            f"data.features.target_length={input_tdim} is longer than the {ratio} x {spec_size} = {ratio * spec_size} "
            f"frames HTS-AT folds into its {spec_size} x {spec_size} image: shorten it or raise model.backbone.spec_size"
        )
    if spec_size % patch_stride or patch_size < patch_stride:
        raise ValueError(
            f"model.backbone.patch_stride={patch_stride} must divide spec_size={spec_size} and be <= patch_size={patch_size}"
        )
    side = spec_size // patch_stride
    for stage in range(len(depths)):
        size = side // 2**stage
        if size < 1 or (stage and (side // 2 ** (stage - 1)) % 2):
            raise ValueError(f"model.backbone.spec_size={spec_size}: the patch grid {side} cannot be halved {len(depths) - 1} times")
        if size > window_size and size % window_size:
            raise ValueError(
                f"model.backbone.window_size={window_size} must divide stage {stage}'s {size} x {size} tokens (or exceed them)"
            )
    final = side // 2 ** (len(depths) - 1)
    if final % ratio:
        raise ValueError(
            f"the final {final} token rows must split into the {ratio} time chunks of the folding: "
            f"choose model.backbone.spec_size / data.features.num_mel_bins dividing {final}"
        )
