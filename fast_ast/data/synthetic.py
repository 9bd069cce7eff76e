"""`data=synthetic`: a deterministic procedurally generated sound-event corpus (no download).

Clip i of split s is generated from seed (seed, split index, i): one event of a random class at a random
onset, duration and level over background noise. The same seed always gives the same corpus.
With labelled_fraction < 1 only the first round(fraction * train_size) training clips keep their labels
(items carry "labelled"): the rest are unlabelled clips for semi-supervised distillation (kd=...).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from fast_ast.data.datamodule import SPLITS, AudioDataModule
from fast_ast.data.synthetic_events import EVENT_CLASSES, render_event


def synthesize_clip(
    class_index: int,
    rng: np.random.Generator,
    samples: int,
    rate: int,
    min_event_fraction: float = 0.4,
    snr_db: tuple[float, float] = (10.0, 30.0),
) -> tuple[np.ndarray, int, int]:
    """Returns (waveform [samples] float32, onset sample, offset sample) for one clip of class `class_index`."""
    name = list(EVENT_CLASSES)[class_index]
    length = int(samples * rng.uniform(min_event_fraction, 1.0))
    onset = int(rng.integers(0, samples - length + 1))
    level = 10 ** (rng.uniform(-20, -3) / 20)
    clip = np.zeros(samples)
    clip[onset : onset + length] = level * render_event(name, rng, length, rate)
    noise_level = level * 10 ** (-rng.uniform(*snr_db) / 20)
    clip += noise_level * rng.standard_normal(samples)
    return clip.astype(np.float32), onset, onset + length


class SyntheticClips(Dataset):
    """Pre-rendered clips of one split: audio [N, samples], labels [N]."""

    def __init__(self, size: int, seed: int, split: str, samples: int, rate: int, labelled: int | None = None):
        self.labelled = labelled  # clips 0..labelled-1 are labelled; None: all, without a "labelled" key
        split_seed = SPLITS.index(split)
        labels, clips = [], []
        for index in range(size):
            rng = np.random.default_rng([seed, split_seed, index])
            label = int(rng.integers(0, len(EVENT_CLASSES)))
            clips.append(synthesize_clip(label, rng, samples, rate)[0])
            labels.append(label)
        self.audio = torch.from_numpy(np.stack(clips)) if clips else torch.zeros(0, samples)
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.split = split

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        item = {"audio": self.audio[index], "target": self.labels[index], "id": f"{self.split}-{index:06d}"}
        if self.labelled is not None:
            item["labelled"] = torch.tensor(index < self.labelled)
        return item


class SyntheticDataModule(AudioDataModule):
    """Built-in corpus: len(EVENT_CLASSES) single-label classes, sizes per split from the config."""

    def __init__(
        self, train_size: int = 1000, val_size: int = 200, test_size: int = 200, seed: int = 0, labelled_fraction: float = 1.0, **kwargs
    ):
        super().__init__(**kwargs)
        if not 0.0 <= labelled_fraction <= 1.0:
            raise ValueError(f"data.labelled_fraction must be in [0, 1], got {labelled_fraction}")
        self.labelled = None if labelled_fraction == 1.0 else round(labelled_fraction * train_size)
        for key, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if value < 1:
                raise ValueError(f"data.{key} must be >= 1, got {value}")
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.seed = seed
        self.class_names = list(EVENT_CLASSES)
        self.multilabel = False

    def build_split(self, split: str) -> Dataset:
        labelled = self.labelled if split == "train" else None
        return SyntheticClips(self.sizes[split], self.seed, split, self.clip_samples, self.sample_rate, labelled)
