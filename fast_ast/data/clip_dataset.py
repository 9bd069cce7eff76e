"""Clip lists and the Dataset that serves them: one labelled clip per item, fixed length.

Item: {"audio": [clip_samples] float32, "target": long (single-label) or [C] float multi-hot, "id": str}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from fast_ast.data.audio_cache import AudioStore
from fast_ast.data.audio_io import CROP_MODES, crop_start, fit_length
from fast_ast.data.validation import FileInfo, LoadFailures


@dataclass(frozen=True)
class Clip:
    """One item of a split. target: a class index, or a tuple of class indices (multi-label).

    length None: the whole file, cropped to the clip length by the dataset's crop mode; otherwise the
    fixed window of `length` samples from `start` (samples at the corpus rate).
    """

    path: str
    target: int | tuple[int, ...]
    id: str
    start: int = 0
    length: int | None = None


class ClipDataset(Dataset):
    """Clips of one split read through `store`; `transform` ([S] -> [S]) runs after cropping (training augmentation)."""

    def __init__(
        self,
        clips: Sequence[Clip],
        infos: dict[str, FileInfo],
        store: AudioStore,
        clip_samples: int,
        num_classes: int,
        multilabel: bool,
        crop: str = "start",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        failures: LoadFailures | None = None,
    ):
        if crop not in CROP_MODES:
            raise ValueError(f"crop mode must be one of {CROP_MODES}, got {crop!r}")
        self.clips, self.infos, self.store = list(clips), infos, store
        self.clip_samples, self.num_classes, self.multilabel = clip_samples, num_classes, multilabel
        self.crop, self.transform = crop, transform
        self.failures = failures or LoadFailures()

    def __len__(self) -> int:
        return len(self.clips)

    def target(self, clip: Clip) -> torch.Tensor:
        if not self.multilabel:
            return torch.tensor(clip.target, dtype=torch.long)
        multi_hot = torch.zeros(self.num_classes)
        multi_hot[list(clip.target)] = 1.0
        return multi_hot

    def waveform(self, clip: Clip) -> torch.Tensor:
        """[clip_samples]: the clip's window, or a crop of the whole file (only the crop is decoded when possible)."""
        info = self.infos[clip.path]
        if clip.length is not None:
            return fit_length(self.store.load(info, clip.start, clip.length), self.clip_samples)
        total = int(round(info.seconds * self.store.sample_rate))
        start = crop_start(total - self.clip_samples, self.crop) if total > self.clip_samples else 0
        return fit_length(self.store.load(info, start, self.clip_samples), self.clip_samples)

    def __getitem__(self, index: int) -> dict:
        return self.failures.item(index, len(self.clips), self.read)

    def read(self, index: int) -> dict:
        clip = self.clips[index]
        waveform = self.waveform(clip)
        if self.transform is not None:
            waveform = self.transform(waveform)
        return {"audio": waveform, "target": self.target(clip), "id": clip.id}
