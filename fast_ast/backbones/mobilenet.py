"""EfficientAT's MobileNetV3 for audio (Schmid et al., ICASSP 2023) on timm's MobileNetV3 blocks.

The layout is EfficientAT's `mn` model: MobileNetV3-Large's 15 inverted-residual blocks (kernel, expansion,
output channels, squeeze-excitation, activation, stride as in the MobileNetV3 paper's Table 1) scaled by
`width_mult` (mn04 = 0.4, mn10 = 1.0, mn40 = 4.0: 0.98M / 4.88M / 68.4M parameters at 527 classes, as
EfficientAT's table), a 1-channel 3x3 stride-2 stem, a 1x1 convolution to 6x the last block's channels
and the MLP head (global average pool, Linear to `last_channel`, Hardswish, dropout, Linear to classes).
Squeeze-excitation is channel-wise with ReLU and a sigmoid gate (EfficientAT's, not timm's hard sigmoid);
BatchNorm eps 1e-3, momentum 0.01.

Shapes (B = batch, T = frames, F = mel bins, K = 6 x last block channels):
    input   [B, T, F] -> image [B, 1, F, T] (frequency = height, time = width, as EfficientAT)
    fmap    [B, K, F', T']   after `features` (total stride 32 on both axes: T' = ceil(T / 32))
    logits  [B, C]           head(fmap)
    frames  [B, T', K]       forward_frames: the feature map averaged over frequency, one frame per time step
                             of the final stride (frame_hop 32 fbank frames, centred at 32 j)

No tokens: Token Merging does not apply (tome.r > 0 is an error).
"""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import make_divisible
from timm.models._efficientnet_blocks import ConvBnAct, DepthwiseSeparableConv, InvertedResidual, SqueezeExcite
from torch import nn

from fast_ast.backbones.base import Backbone

# MobileNetV3-Large (Howard et al. 2019, Table 1), as EfficientAT builds it:
# (kernel, expanded channels, output channels, squeeze-excitation, activation, stride); input 16 channels.
BLOCKS = (
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
)
STEM_CHANNELS, LAST_CHANNEL, STEM_STRIDE = 16, 1280, 2
ACTIVATIONS = {"RE": nn.ReLU, "HS": nn.Hardswish}


def scaled(channels: int, width_mult: float) -> int:
    """EfficientAT's channel rounding: channels * width_mult to a multiple of 8 (never 10% below)."""
    return make_divisible(channels * width_mult, 8)


def squeeze_channels(channels: float) -> int:
    """EfficientAT's squeeze width: channels // 4 rounded to a multiple of 8."""
    return make_divisible(int(channels), 8)


def strided_length(length: int, strides: list[int]) -> int:
    """Output length of odd-kernel, half-padded convolutions with these strides: ceil division by each."""
    for stride in strides:
        length = (length - 1) // stride + 1
    return length


class MobileNetV3Audio(Backbone):
    """EfficientAT-style MobileNetV3. `forward(x[B, T, F]) -> logits[B, num_classes]`."""

    def __init__(
        self,
        num_classes: int,
        input_fdim: int = 128,
        input_tdim: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"model.backbone.width_mult must be > 0, got {width_mult}")
        self.num_classes, self.width_mult = num_classes, width_mult
        self.input_fdim, self.input_tdim = input_fdim, input_tdim
        norm_layer = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)
        se_layer = partial(SqueezeExcite, rd_ratio=0.25, rd_round_fn=squeeze_channels, force_act_layer=nn.ReLU, gate_layer=nn.Sigmoid)
        channels = scaled(STEM_CHANNELS, width_mult)
        layers: list[nn.Module] = [
            ConvBnAct(1, channels, kernel_size=3, stride=STEM_STRIDE, act_layer=nn.Hardswish, norm_layer=norm_layer)
        ]
        for kernel, expanded, out, use_se, activation, stride in BLOCKS:
            expanded, out = scaled(expanded, width_mult), scaled(out, width_mult)
            common = dict(
                stride=stride,
                dw_kernel_size=kernel,
                act_layer=ACTIVATIONS[activation],
                norm_layer=norm_layer,
                se_layer=se_layer if use_se else None,
                drop_path_rate=drop_path_rate,
            )
            if expanded == channels:  # no expansion convolution (EfficientAT skips it, as torchvision)
                layers.append(DepthwiseSeparableConv(channels, out, **common))
            else:
                layers.append(InvertedResidual(channels, out, exp_ratio=expanded / channels, **common))
            channels = out
        self.feature_dim = 6 * channels
        layers.append(ConvBnAct(channels, self.feature_dim, kernel_size=1, act_layer=nn.Hardswish, norm_layer=norm_layer))
        self.features = nn.Sequential(*layers)
        last_channel = scaled(LAST_CHANNEL, width_mult)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(start_dim=1),
            nn.Linear(self.feature_dim, last_channel),
            nn.Hardswish(),
            nn.Dropout(p=dropout),
            nn.Linear(last_channel, num_classes),
        )
        self.strides = [STEM_STRIDE] + [block[-1] for block in BLOCKS]
        self.apply(init_weights)

    # ---- the backbone contract (fast_ast.backbones.base) -------------------------------------------
    @property
    def classifier(self) -> nn.Module:
        return self.head

    @property
    def num_stages(self) -> int:
        """The stem, the 15 blocks and the final 1x1 convolution."""
        return len(self.features)

    @property
    def frame_dim(self) -> int:
        return self.feature_dim

    @property
    def num_frames(self) -> int:
        return strided_length(self.input_tdim, self.strides)

    @property
    def frame_hop(self) -> float:
        hop = 1
        for stride in self.strides:
            hop *= stride
        return float(hop)

    @property
    def frame_offset(self) -> float:
        return 0.0  # odd kernels, half padding: output j is centred on input j * stride at every layer

    def trainable_tail(self, last_n: int) -> list[nn.Module]:
        """The head; with last_n > 0 also the last `last_n` entries of `features`."""
        return [self.head, *self.features[len(self.features) - last_n :]] if last_n else [self.head]

    # ---- forward ---------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, K, F', T'] final feature map."""
        return self.features(x.transpose(1, 2).unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def forward_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, F] -> (logits [B, C], frames [B, T', K]: the feature map averaged over frequency)."""
        fmap = self.forward_features(x)
        return self.head(fmap), fmap.mean(dim=2).transpose(1, 2)


def init_weights(module: nn.Module) -> None:
    """EfficientAT's (torchvision's) initialisation: Kaiming fan-out convolutions, N(0, 0.01) Linears."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0, 0.01)
        nn.init.zeros_(module.bias)
