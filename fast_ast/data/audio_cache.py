"""AudioStore: where a corpus's waveforms come from — the source file, or its decoded copy in `data.cache_dir`.

A source that needs converting (compressed, e.g. FLAC/OGG/MP3, or at another sample rate than the corpus)
is decoded and resampled once, and the result kept as a float32 .npy file [samples] under `cache_dir`,
named by a hash of (absolute path, size, mtime, corpus rate) so a changed source never reads a stale copy.
Uncompressed PCM at the corpus rate is read straight from the file (a window of it when cropping).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from fast_ast.data.audio_io import read_audio
from fast_ast.data.validation import FileInfo

# Containers whose PCM/float content soundfile reads without decoding work.
PCM_CONTAINERS = ("WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "CAF")


def is_uncompressed(info: FileInfo) -> bool:
    return info.format in PCM_CONTAINERS and (info.subtype.startswith("PCM") or info.subtype in ("FLOAT", "DOUBLE"))


class AudioStore:
    """Loads clips [samples] at `sample_rate` given their FileInfo (from the setup check)."""

    def __init__(self, sample_rate: int, cache_dir: str | Path | None = None):
        self.sample_rate = sample_rate
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def caches(self, info: FileInfo) -> bool:
        """True when `info`'s file is read through a decoded copy in cache_dir."""
        return self.cache_dir is not None and (not is_uncompressed(info) or info.rate != self.sample_rate)

    def cache_path(self, info: FileInfo) -> Path:
        key = f"{os.path.abspath(info.path)}\0{info.size}\0{info.mtime_ns}\0{self.sample_rate}"
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.npy"

    def save(self, info: FileInfo, waveform: torch.Tensor) -> Path:
        """Writes the decoded waveform [samples] atomically (parallel workers and jobs may race)."""
        path = self.cache_path(info)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            np.save(file, waveform.numpy().astype(np.float32, copy=False))
        os.replace(temporary, path)
        return path

    def load(self, info: FileInfo, start: int = 0, length: int | None = None) -> torch.Tensor:
        """Samples [start, start + length) (None = to the end) of the file at `sample_rate`, float32."""
        if not self.caches(info):
            return read_audio(info.path, self.sample_rate, start, length)
        path = self.cache_path(info)
        try:
            cached = np.load(path, mmap_mode="r")
            return torch.from_numpy(np.array(cached[start : None if length is None else start + length]))
        except (OSError, ValueError):  # no copy yet (cache_dir emptied), or a damaged one: decode the source again
            waveform = read_audio(info.path, self.sample_rate)
            self.save(info, waveform)
            return waveform[start : None if length is None else start + length]
