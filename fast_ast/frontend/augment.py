"""Training-time augmentation, as in the AST recipes, drawn per clip from the clip's view seed.

A training item carries `view_seed` (fast_ast.data.views): every random draw of its view comes from
generators seeded by it, so the same seed gives the same view wherever it is computed (the student's
training step, an online teacher in the same step, `python -m fast_ast.teacher views=E`).
Order (Augment.view): mixup with the item's partner (waveform or features level) -> fbank ->
SpecAugment (masked cells set to 0 before normalisation, as AST) -> normalise -> noise -> time shift.
The mixup partner and weight are drawn in the dataset (fast_ast.data.views.ViewDataset), as the
original AST mixes in its dataset. Shapes: waveforms [B, S]; features [B, T, F]; seeds [B] int64.
Draws are made on the CPU, one generator per clip, so they do not depend on the device or the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from fast_ast.frontend.fbank import FbankFrontend

MIXUP_LEVELS = ("waveform", "features")


def clip_generators(seeds: torch.Tensor, stream: int) -> list[torch.Generator]:
    """One CPU generator per clip, seeded from (view seed, stream): each augmentation has its own stream,
    so switching one off does not change the draws of another."""
    return [torch.Generator().manual_seed(int(seed) * 8 + stream) for seed in seeds.tolist()]


def mix_pair(x: torch.Tensor, partner: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """weight[b] * x[b] + (1 - weight[b]) * partner[b]; x, partner [B, ...], weight [B]."""
    w = weight.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return w * x + (1 - w) * partner


def band_mask(size: int, max_width: int, generators: list[torch.Generator]) -> torch.Tensor:
    """[B, size] bool: per clip one band of width ~ U{0..max_width-1} at a uniform start."""
    rows = []
    for generator in generators:
        width = int(torch.randint(0, max(max_width, 1), (1,), generator=generator))
        start = int(torch.rand(1, generator=generator) * (size - width + 1))
        rows.append((torch.arange(size) >= start) & (torch.arange(size) < start + width))
    return torch.stack(rows)


def spec_augment(x: torch.Tensor, freqm: int, timem: int, seeds: torch.Tensor) -> torch.Tensor:
    """[B, T, F] -> same, one frequency band (< freqm bins) and one time band (< timem frames) zeroed per clip."""
    batch, frames, bins = x.shape
    mask = torch.zeros(batch, frames, bins, dtype=torch.bool)
    if freqm > 0:
        mask |= band_mask(bins, freqm, clip_generators(seeds, 0)).unsqueeze(1)
    if timem > 0:
        mask |= band_mask(frames, timem, clip_generators(seeds, 1)).unsqueeze(2)
    return x.masked_fill(mask.to(x.device), 0.0)


def uniform_noise(x: torch.Tensor, max_scale: float, seeds: torch.Tensor) -> torch.Tensor:
    """[B, T, F] + U(0, 1) noise times a per-clip scale ~ U(0, max_scale) (AST's feature noise)."""
    draws = []
    for generator in clip_generators(seeds, 2):
        scale = torch.rand(1, generator=generator) * max_scale
        draws.append(torch.rand(x.shape[1:], generator=generator) * scale)
    return x + torch.stack(draws).to(x.device, x.dtype)


def time_roll(x: torch.Tensor, max_shift: int, seeds: torch.Tensor) -> torch.Tensor:
    """[B, T, F] -> same, each clip circularly shifted in time by an integer in [-max_shift, max_shift)."""
    frames = x.shape[1]
    shift = torch.stack([torch.randint(-max_shift, max_shift, (1,), generator=g) for g in clip_generators(seeds, 3)])
    index = (torch.arange(frames).unsqueeze(0) - shift) % frames  # [B, T]
    return torch.gather(x, 1, index.to(x.device).unsqueeze(-1).expand_as(x))


class Augment(nn.Module):
    """The augmentation settings of a corpus (conf/data/*.yaml: `augment`).

    mixup (probability) and mixup_alpha are drawn in the dataset; `seed` is the base of the clips'
    view seeds (fast_ast.data.views.view_seed); the rest is applied here, on the training device.
    """

    def __init__(
        self,
        mixup: float = 0.0,
        mixup_alpha: float = 10.0,
        mixup_level: str = "waveform",
        freqm: int = 0,
        timem: int = 0,
        noise: float = 0.0,
        time_shift: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if not 0.0 <= mixup <= 1.0:
            raise ValueError(f"augment.mixup is a probability in [0, 1], got {mixup}")
        if mixup_level not in MIXUP_LEVELS:
            raise ValueError(f"augment.mixup_level must be one of {MIXUP_LEVELS}, got {mixup_level!r}")
        for key, value in (("freqm", freqm), ("timem", timem), ("noise", noise), ("time_shift", time_shift), ("seed", seed)):
            if value < 0:
                raise ValueError(f"augment.{key} must be >= 0, got {value}")
        self.mixup, self.mixup_alpha, self.mixup_level = mixup, mixup_alpha, mixup_level
        self.freqm, self.timem, self.noise, self.time_shift, self.seed = freqm, timem, noise, time_shift, seed

    def mask(self, fbank: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        return spec_augment(fbank, self.freqm, self.timem, seeds) if (self.freqm or self.timem) else fbank

    def check_fits(self, frames: int, bins: int) -> None:
        """SpecAugment bands must fit the features [frames, bins] they mask (checked before training)."""
        for key, width, size, size_key in (("timem", self.timem, frames, "features.target_length"), ("freqm", self.freqm, bins, "features.num_mel_bins")):
            if width > size:
                raise ValueError(
                    f"data.augment.{key}={width} is wider than the input's {size} (data.{size_key}={size}): "
                    f"set data.augment.{key} to at most {size} (0 turns it off)"
                )

    def perturb(self, features: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        """Normalised features: AST's additive uniform noise (random scale <= noise) and time shift."""
        if self.noise > 0:
            features = uniform_noise(features, self.noise, seeds)
        if self.time_shift > 0:
            features = time_roll(features, self.time_shift, seeds)
        return features

    def view(self, frontend: FbankFrontend, batch: dict) -> torch.Tensor:
        """The augmented, normalised features [B, T, F] of a training batch through `frontend`.

        batch: "audio" [B, S], "view_seed" [B]; with mixup also "mix_audio" [B, S] and "mix_weight" [B]
        (the dataset's partner clip and weight; targets are mixed there already).
        """
        audio, seeds = batch["audio"], batch["view_seed"]
        mixing = "mix_audio" in batch
        if mixing and self.mixup_level == "waveform":
            audio = mix_pair(audio, batch["mix_audio"], batch["mix_weight"])
        fbank = frontend.features(audio)
        if mixing and self.mixup_level == "features":
            fbank = mix_pair(fbank, frontend.features(batch["mix_audio"]), batch["mix_weight"])
        return self.perturb(frontend.normalize(self.mask(fbank, seeds)), seeds)
