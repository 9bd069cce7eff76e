"""Base LightningDataModule shared by every corpus.

A subclass sets `class_names` and `multilabel` in its __init__ (the model is sized from them before
`setup`) and implements `build_split(name)` returning a Dataset of dicts
{"audio": [clip_samples] float, "target": long or [C] float, "id": str} (optionally "labelled": bool,
False for a clip whose target is not to be trained on). The training loader serves the split through
fast_ast.data.views (a seed per clip and epoch that fixes its augmentation, mixup in the dataset).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from fast_ast.data.views import ViewDataset, ViewSampler
from fast_ast.config_checks import check_batch_sizes, check_int, check_positive_number

SPLITS = ("train", "val", "test")


class AudioDataModule(L.LightningDataModule, ABC):
    def __init__(
        self,
        batch_size: int | list[int] = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        sample_rate: int = 16000,
        clip_seconds: float = 10.0,
        monitor: str = "val/acc",
        features: dict[str, Any] | None = None,
        augment: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.batch_size_schedule = check_batch_sizes("data.batch_size", batch_size)
        self.eval_batch_size = (
            self.batch_size_schedule[-1] if eval_batch_size is None else check_int("data.eval_batch_size", eval_batch_size, 1)
        )
        check_int("data.num_workers", num_workers, 0)
        check_int("data.sample_rate", sample_rate, 1)
        check_positive_number("data.clip_seconds", clip_seconds)
        self.num_workers = num_workers
        self.sample_rate = sample_rate
        self.clip_seconds = clip_seconds
        self.monitor = monitor
        self.features = dict(features or {})
        self.augment = dict(augment or {})
        self.class_names: list[str] = []
        self.multilabel = False
        self.datasets: dict[str, Dataset] = {}
        self.replay_views = None  # [E, N] view seeds of stored teacher views (fast_ast.modules.build)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def reloads_each_epoch(self) -> bool:
        """A per-epoch batch-size schedule needs the train loader rebuilt every epoch."""
        return len(self.batch_size_schedule) > 1

    def batch_size_at(self, epoch: int) -> int:
        return self.batch_size_schedule[min(epoch, len(self.batch_size_schedule) - 1)]

    @abstractmethod
    def build_split(self, split: str) -> Dataset:
        """The Dataset of one split ("train", "val" or "test")."""

    def plain_split(self, split: str) -> Dataset:
        """The split's clips without training-time randomness (random crops, noise mixing); after setup.

        Used for statistics (python -m fast_ast.stats); corpora with such randomness override it.
        """
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split not in self.datasets:
                self.datasets[split] = self.build_split(split)

    def loader(self, split: str, batch_size: int, shuffle: bool, sampler=None) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=False,
            drop_last=False,
        )

    def train_sampler(self):
        """Override for weighted/balanced sampling (None = uniform shuffling)."""
        return None

    def train_views(self) -> ViewDataset:
        """The training split served by (index, epoch) keys: one seeded view per clip and epoch."""
        views = ViewDataset(
            self.datasets["train"], self.num_classes, seed=int(self.augment.get("seed", 0)),
            mixup=float(self.augment.get("mixup", 0.0)), mixup_alpha=float(self.augment.get("mixup_alpha", 10.0)),
        )
        views.replay = self.replay_views
        return views

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        views = self.train_views()
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = ViewSampler(views, self.train_sampler(), replicas, rank, seed=int(self.augment.get("seed", 0)))
        sampler.set_epoch(epoch)
        return DataLoader(
            views,
            batch_size=self.batch_size_at(epoch),
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=False,
            drop_last=False,
        )

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", self.eval_batch_size, shuffle=False)
