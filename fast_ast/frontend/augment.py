"""Training-time augmentation on batches, as in the AST recipes, applied on the training device.

Order in training (see AudioClassifier.features): waveform mixup -> fbank -> feature mixup ->
SpecAugment (masked cells set to 0 before normalisation, as AST) -> normalise -> noise -> time shift.
Shapes: waveforms [B, S]; features [B, T, F]; targets [B, C] (one-hot or multi-hot floats).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class MixPlan:
    """In-batch mixup: sample i becomes weight[i] * x[i] + (1 - weight[i]) * x[partner[i]].

    partner [B] long, weight [B] float (1.0 where a sample is not mixed). Apply the same plan to the
    inputs, the label targets and any teacher targets so they stay consistent.
    """

    partner: torch.Tensor
    weight: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return w * x + (1 - w) * x[self.partner]


def sample_mix_plan(batch: int, prob: float, alpha: float, device: torch.device) -> MixPlan:
    """Each sample is mixed with probability `prob` with a random partner, lambda ~ Beta(alpha, alpha)."""
    partner = torch.randint(0, batch, (batch,), device=device)
    lam = torch.distributions.Beta(alpha, alpha).sample((batch,)).to(device)
    mixed = torch.rand(batch, device=device) < prob
    return MixPlan(partner, torch.where(mixed, lam, torch.ones_like(lam)))


def band_mask(batch: int, size: int, max_width: int, device: torch.device) -> torch.Tensor:
    """[B, size] bool: per sample one band of width ~ U{0..max_width-1} at a uniform start."""
    width = torch.randint(0, max(max_width, 1), (batch, 1), device=device)
    start = (torch.rand(batch, 1, device=device) * (size - width + 1)).long()
    position = torch.arange(size, device=device).unsqueeze(0)
    return (position >= start) & (position < start + width)


def spec_augment(x: torch.Tensor, freqm: int, timem: int) -> torch.Tensor:
    """[B, T, F] -> same, one frequency band (< freqm bins) and one time band (< timem frames) zeroed per sample."""
    batch, frames, bins = x.shape
    mask = torch.zeros(batch, frames, bins, dtype=torch.bool, device=x.device)
    if freqm > 0:
        mask |= band_mask(batch, bins, freqm, x.device).unsqueeze(1)
    if timem > 0:
        mask |= band_mask(batch, frames, timem, x.device).unsqueeze(2)
    return x.masked_fill(mask, 0.0)


def time_roll(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """[B, T, F] -> same, each sample circularly shifted in time by an integer in [-max_shift, max_shift)."""
    batch, frames, _ = x.shape
    shift = torch.randint(-max_shift, max_shift, (batch, 1), device=x.device)
    index = (torch.arange(frames, device=x.device).unsqueeze(0) - shift) % frames
    return torch.gather(x, 1, index.unsqueeze(-1).expand_as(x))


class Augment(nn.Module):
    """Holds the augmentation settings of a corpus (conf/data/*.yaml: `augment`)."""

    def __init__(
        self,
        mixup: float = 0.0,
        mixup_alpha: float = 10.0,
        mixup_level: str = "waveform",
        freqm: int = 0,
        timem: int = 0,
        noise: float = 0.0,
        time_shift: int = 0,
    ):
        super().__init__()
        if not 0.0 <= mixup <= 1.0:
            raise ValueError(f"augment.mixup is a probability in [0, 1], got {mixup}")
        if mixup_level not in ("waveform", "features"):
            raise ValueError(f"augment.mixup_level must be 'waveform' or 'features', got {mixup_level!r}")
        for key, value in (("freqm", freqm), ("timem", timem), ("noise", noise), ("time_shift", time_shift)):
            if value < 0:
                raise ValueError(f"augment.{key} must be >= 0, got {value}")
        self.mixup, self.mixup_alpha, self.mixup_level = mixup, mixup_alpha, mixup_level
        self.freqm, self.timem, self.noise, self.time_shift = freqm, timem, noise, time_shift

    def check_fits(self, frames: int, bins: int) -> None:
        """SpecAugment bands must fit the features [frames, bins] they mask (checked before training)."""
        for key, width, size, size_key in (("timem", self.timem, frames, "features.target_length"), ("freqm", self.freqm, bins, "features.num_mel_bins")):
            if width > size:
                raise ValueError(
                    f"data.augment.{key}={width} is wider than the input's {size} (data.{size_key}={size}): "
                    f"set data.augment.{key} to at most {size} (0 turns it off)"
                )

    def mix_plan(self, batch: int, device: torch.device) -> MixPlan | None:
        return sample_mix_plan(batch, self.mixup, self.mixup_alpha, device) if self.mixup > 0 else None

    def mask(self, features: torch.Tensor) -> torch.Tensor:
        return spec_augment(features, self.freqm, self.timem) if (self.freqm or self.timem) else features

    def perturb(self, features: torch.Tensor) -> torch.Tensor:
        """Normalised features: AST's additive uniform noise (random scale <= noise) and time shift."""
        if self.noise > 0:
            scale = torch.rand(features.shape[0], 1, 1, device=features.device) * self.noise
            features = features + torch.rand_like(features) * scale
        if self.time_shift > 0:
            features = time_roll(features, self.time_shift)
        return features
