"""Batched Kaldi-compatible log-mel filterbanks (the AST recipes' features).

Numerically matches `torchaudio.compliance.kaldi.fbank(wav, htk_compat=True, use_energy=False,
window_type="hanning", dither=0.0, frame_shift=10, frame_length=25, num_mel_bins=F)` per clip, but runs
on a whole batch at once on the training device.

Shapes: waveform [B, S] at `sample_rate` -> fbank [B, frames, F] -> features [B, target_length, F].
frames = 1 + (S - window) // shift (Kaldi's snip_edges=True); features are zero-padded or cropped to
`target_length` frames (as AST pads the log-mel matrix) and normalised as (x - mean) / (2 * std).

Precision: the features are always computed in float32 (autocast off, float32 constants even when the model
is cast to half or bfloat16 by trainer.precision=16-true / bf16-true); `normalize` hands them over in the
dtype the model was cast to, which is what the backbone's weights are in.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def mel_scale(freq: torch.Tensor) -> torch.Tensor:
    """Kaldi's (HTK) mel scale: 1127 * ln(1 + f / 700)."""
    return 1127.0 * torch.log1p(freq / 700.0)


def kaldi_mel_banks(num_bins: int, fft_size: int, sample_rate: float, low_freq: float, high_freq: float) -> torch.Tensor:
    """Triangular filters equally spaced on the mel scale: [num_bins, fft_size // 2 + 1] (last column zero, as Kaldi)."""
    nyquist = sample_rate / 2
    high_freq = high_freq if high_freq > 0 else nyquist + high_freq
    if not 0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"mel range must satisfy 0 <= low_freq < high_freq <= {nyquist}, got {low_freq}..{high_freq}")
    mel_low, mel_high = mel_scale(torch.tensor(low_freq, dtype=torch.float64)), mel_scale(torch.tensor(high_freq, dtype=torch.float64))
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    left, center, right = mel_low + index * delta, mel_low + (index + 1) * delta, mel_low + (index + 2) * delta
    fft_mel = mel_scale(sample_rate / fft_size * torch.arange(fft_size // 2, dtype=torch.float64)).unsqueeze(0)
    up = (fft_mel - left) / (center - left)
    down = (right - fft_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return F.pad(banks, (0, 1)).float()


class FbankFrontend(nn.Module):
    """Waveform [B, S] -> normalised log-mel features [B, target_length, num_mel_bins]."""

    def __init__(
        self,
        sample_rate: int = 16000,
        num_mel_bins: int = 128,
        target_length: int = 1024,
        norm_mean: float = 0.0,
        norm_std: float = 0.5,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        preemphasis: float = 0.97,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
        cpu_chunk_frames: int = 2048,
    ):
        super().__init__()
        if norm_std <= 0:
            raise ValueError(f"features.norm_std must be > 0, got {norm_std}")
        if cpu_chunk_frames < 1:
            raise ValueError(f"features.cpu_chunk_frames must be >= 1, got {cpu_chunk_frames}")
        self.sample_rate = sample_rate
        self.num_mel_bins = num_mel_bins
        self.target_length = target_length
        self.norm_mean, self.norm_std = float(norm_mean), float(norm_std)
        self.window_size = int(sample_rate * frame_length_ms / 1000)
        self.window_shift = int(sample_rate * frame_shift_ms / 1000)
        self.fft_size = 2 ** math.ceil(math.log2(self.window_size))
        self.preemphasis = preemphasis
        self.cpu_chunk_frames = cpu_chunk_frames
        self.constants = {
            "window": torch.hann_window(self.window_size, periodic=False),  # [window]
            "mel_banks": kaldi_mel_banks(num_mel_bins, self.fft_size, sample_rate, low_freq, high_freq).T.contiguous(),  # [fft_size // 2 + 1, F]
        }
        for name, value in self.constants.items():
            self.register_buffer(name, value.clone(), persistent=False)
        self.register_buffer("dtype_probe", torch.zeros(0), persistent=False)  # follows the model's dtype casts

    def _apply(self, fn, recurse=True):
        """Device moves reach the float32 constants, dtype casts do not (they only move dtype_probe)."""
        super()._apply(fn, recurse)
        for name, value in self.constants.items():
            setattr(self, name, value.to(getattr(self, name).device))
        return self

    @property
    def output_dtype(self) -> torch.dtype:
        """The dtype the model was cast to (float32 unless trainer.precision is *-true)."""
        return self.dtype_probe.dtype

    def num_frames(self, num_samples: int) -> int:
        return 1 + (num_samples - self.window_size) // self.window_shift

    @torch.no_grad()  # features are inputs, not learned: no autograd, so the buffers are reused in place
    def fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, S] -> [B, frames, F] log-mel energies (Kaldi fbank of each clip, no clip mean removal).

        On a GPU the batch is one pass. On CPU it goes a few clips at a time (at most `cpu_chunk_frames`
        frames, about 2 clips of 10 s): buffers that stay in cache, measured 2x faster than one pass over
        16 x 10 s clips (`python -m fast_ast.bench suite=frontend`).
        """
        if waveform.shape[-1] < self.window_size:
            raise ValueError(f"waveform of {waveform.shape[-1]} samples is shorter than one {self.window_size}-sample frame")
        if waveform.device.type == "cpu":
            clips = max(1, self.cpu_chunk_frames // self.num_frames(waveform.shape[-1]))
            if clips < waveform.shape[0]:
                return torch.cat([self.log_mel(chunk) for chunk in waveform.split(clips)])
        return self.log_mel(waveform)

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, S] -> [B, frames, F]: `fbank` of the whole batch in one pass."""
        frames = waveform.float().unfold(-1, self.window_size, self.window_shift)  # [B, frames, window], a view
        padded = frames.new_empty(*frames.shape[:-1], self.fft_size)  # [B, frames, fft_size]: frame, then zeros
        frame = padded[..., : self.window_size]
        torch.sub(frames, frames.mean(dim=-1, keepdim=True), out=frame)  # each frame's DC offset removed
        # Kaldi's pre-emphasis x[t] - p * x[t - 1] (x[-1] = x[0]); multiply, then subtract: Kaldi's rounding.
        frame[..., 1:] -= self.preemphasis * frame[..., :-1]
        frame[..., :1] -= self.preemphasis * frame[..., :1]
        frame.mul_(self.window)
        padded[..., self.window_size :].zero_()
        spectrum = torch.view_as_real(torch.fft.rfft(padded)).square_()  # [B, frames, fft_size // 2 + 1, (re², im²)]
        mel = torch.add(spectrum[..., 0], spectrum[..., 1]) @ self.mel_banks
        return mel.clamp_min_(torch.finfo(mel.dtype).eps).log_()

    def fit_frames(self, fbank: torch.Tensor) -> torch.Tensor:
        """Zero-pad or crop [B, frames, F] to [B, target_length, F]."""
        missing = self.target_length - fbank.shape[1]
        if missing > 0:
            return F.pad(fbank, (0, 0, 0, missing))
        return fbank[:, : self.target_length]

    def normalize(self, fbank: torch.Tensor) -> torch.Tensor:
        """[B, T, F] float32 -> normalised, in output_dtype (the backbone's)."""
        return ((fbank.float() - self.norm_mean) / (2 * self.norm_std)).to(self.output_dtype)

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, S] -> [B, target_length, F] un-normalised float32 log-mel (AST removes each clip's mean first)."""
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            waveform = waveform.float()
            return self.fit_frames(self.fbank(waveform - waveform.mean(dim=-1, keepdim=True)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.features(waveform))
