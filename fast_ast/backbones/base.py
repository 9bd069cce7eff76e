"""The contract every backbone implements, so the classifier, the event model, KD, token reduction,
eval/predict/export and the benches use any of them the same way.

A backbone is built by name from the fixed registry (fast_ast.backbones.registry) as
    cls(num_classes=C, input_fdim=F, input_tdim=T, **size)
with `size` the validated scalars of `model.backbone.*`. Then, with B = batch, T = frames, F = mel bins:

    forward(x [B, T, F])         -> logits [B, C]
    forward_frames(x [B, T, F])  -> (clip logits [B, C], frames [B, T', frame_dim]) in time order, for
                                    frame-level heads (data=events). frames_are_logits: the frames are
                                    already per-class logits (HTS-AT's token-semantic module), frame_dim = C;
                                    otherwise they are embeddings a frame head maps to classes.
    num_frames                   T', the frames forward_frames gives for the configured input length
    frame_hop, frame_offset      fbank frames between consecutive frames, and the centre of frame 0
                                 (in fbank frames), so frame j is centred at frame_offset + j * frame_hop
    classifier                   the module whose output is the logits (eval reads scores off it; a
                                 different class count re-initialises it)
    trainable_tail(n)            the modules partial fine-tuning keeps trainable: the last n stages and the head
    token_grid                   (freq rows, time columns) of the patch tokens, or None (no tokens: a CNN)
    supports_token_merging       whether token reduction (fast_ast.tome) applies: plain global
                                 self-attention over patch tokens; False for windowed attention and CNNs
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn


class Backbone(nn.Module, ABC):
    """Base class of the backbone family (see the module docstring for the contract)."""

    supports_token_merging: ClassVar[bool] = False
    frames_are_logits: ClassVar[bool] = False

    num_classes: int

    @property
    def token_grid(self) -> tuple[int, int] | None:
        return None

    @property
    @abstractmethod
    def classifier(self) -> nn.Module:
        """The module whose output is the logits [B, C]."""

    @property
    @abstractmethod
    def num_stages(self) -> int:
        """How many stages trainable_tail can count (transformer blocks, CNN stages)."""

    @property
    @abstractmethod
    def frame_dim(self) -> int:
        """Width of forward_frames' frames."""

    @property
    @abstractmethod
    def num_frames(self) -> int:
        """T', the number of frames forward_frames returns."""

    @property
    @abstractmethod
    def frame_hop(self) -> float:
        """Fbank frames between consecutive frames of forward_frames."""

    @property
    @abstractmethod
    def frame_offset(self) -> float:
        """Centre of frame 0 of forward_frames, in fbank frames."""

    @abstractmethod
    def trainable_tail(self, last_n: int) -> list[nn.Module]:
        """The modules partial fine-tuning trains: the last `last_n` stages, what follows them, and the head."""

    @abstractmethod
    def forward_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, F] -> (clip logits [B, C], frames [B, T', frame_dim])."""
