"""Reading audio files: soundfile decode -> mono -> resample -> fixed length.

All functions return float32 numpy/torch waveforms [samples]. Errors name the file and the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


class AudioReadError(RuntimeError):
    """A file that cannot be used as audio; `path` and `reason` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def read_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Decode `path` (wav/flac/ogg...) to a mono float32 waveform [samples] at `sample_rate`."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # [samples, channels]
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise AudioReadError(path, f"cannot decode ({type(error).__name__}: {error})") from error
    if data.shape[0] == 0:
        raise AudioReadError(path, "zero length")
    if not np.isfinite(data).all():
        raise AudioReadError(path, "contains NaN or infinite samples")
    waveform = torch.from_numpy(data.mean(axis=1))
    if rate != sample_rate:
        waveform = AF.resample(waveform, rate, sample_rate)
    return waveform


def fit_length(waveform: torch.Tensor, length: int, mode: str = "start", generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad (at the end) or crop [samples] to [length]; crop mode 'random', 'center' or 'start'."""
    excess = waveform.shape[-1] - length
    if excess <= 0:
        return torch.nn.functional.pad(waveform, (0, -excess))
    if mode == "random":
        start = int(torch.randint(0, excess + 1, (1,), generator=generator))
    elif mode == "center":
        start = excess // 2
    elif mode == "start":
        start = 0
    else:
        raise ValueError(f"crop mode must be 'random', 'center' or 'start', got {mode!r}")
    return waveform[..., start : start + length]
