"""Reading audio files: soundfile decode (of the window needed) -> mono -> resample -> fixed length.

All functions return float32 torch waveforms [samples]. Errors name the file and the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from fast_ast.data.resample import input_span, output_length, resample

CROP_MODES = ("random", "center", "start")


class AudioReadError(RuntimeError):
    """A file that cannot be used as audio; `path` and `reason` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def unreadable_reason(path: str | Path) -> str | None:
    """Why `path` cannot even be opened (missing, permission denied, I/O error), else None.
    (libsndfile reports all of these as "System error".)"""
    try:
        with open(path, "rb") as file:
            file.read(1)
    except FileNotFoundError:
        return "missing file"
    except OSError as error:
        return f"cannot read ({error.strerror or error})"
    return None


def read_audio(path: str | Path, sample_rate: int, start: int = 0, length: int | None = None) -> torch.Tensor:
    """Decode `path` (wav/flac/ogg/mp3...) to a mono float32 waveform [samples] at `sample_rate`.

    `start` and `length` (samples at `sample_rate`; None = to the end) select a window. Only the source
    samples that window depends on are decoded (fast_ast.data.resample.input_span), whatever the rates, so a
    window of a long file costs the window, and resampling memory is bounded for any rate.
    """
    try:
        with sf.SoundFile(str(path)) as source:
            rate = source.samplerate
            if rate == sample_rate:
                first, wanted = start, -1 if length is None else length
            else:
                first, stop = input_span(start, 1 if length is None else length, rate, sample_rate)
                first = max(first, 0)
                wanted = -1 if length is None else stop - first
            if 0 < first < source.frames:
                source.seek(first)
            data = source.read(wanted, dtype="float32", always_2d=True) if first < source.frames else np.zeros((0, 1), np.float32)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise AudioReadError(path, unreadable_reason(path) or f"cannot decode ({type(error).__name__}: {error})") from error
    if data.shape[0] == 0:
        raise AudioReadError(path, "zero length" if start == 0 else f"no samples from sample {start}")
    if not np.isfinite(data).all():
        raise AudioReadError(path, "contains NaN or infinite samples")
    waveform = torch.from_numpy(data.mean(axis=1))
    if rate == sample_rate:
        return waveform
    available = output_length(first + data.shape[0], rate, sample_rate) - start  # outputs up to the end read
    count = available if length is None else min(length, available)
    if count <= 0:
        raise AudioReadError(path, f"no samples from sample {start}")
    return resample(waveform, rate, sample_rate, start, count, offset=first)


def crop_start(excess: int, mode: str, generator: torch.Generator | None = None) -> int:
    """First sample of a window cropped from a clip `excess` samples longer than the window."""
    if mode == "random":
        return int(torch.randint(0, excess + 1, (1,), generator=generator))
    if mode == "center":
        return excess // 2
    if mode == "start":
        return 0
    raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")


def fit_length(waveform: torch.Tensor, length: int, mode: str = "start", generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad (at the end) or crop [samples] to [length]; crop mode 'random', 'center' or 'start'."""
    excess = waveform.shape[-1] - length
    if excess <= 0:
        return torch.nn.functional.pad(waveform, (0, -excess))
    start = crop_start(excess, mode, generator)
    return waveform[..., start : start + length]
