"""FileCorpusDataModule: the base of every corpus read from audio files (esc50, speechcommands, audioset,
folder, events).

A subclass sets class_names/multilabel in __init__ and lists each split's clips (`list_clips`); setup then
checks every referenced file once (validation.check_files, cached on disk), applies `on_bad_file`
(error: fail listing the bad files; skip: exclude them and write bad_files.json into `report_dir`) and
serves the clips through an AudioStore (decoded copies in `cache_dir` for compressed / other-rate sources).
"""

from __future__ import annotations

import os
from abc import ABCMeta, abstractmethod
from pathlib import Path

from torch.utils.data import Dataset

from fast_ast.data.audio_cache import AudioStore
from fast_ast.data.audio_io import CROP_MODES
from fast_ast.data.clip_dataset import Clip, ClipDataset
from fast_ast.data.datamodule import SPLITS, AudioDataModule
from fast_ast.data.validation import (
    ON_BAD_FILE,
    CheckCache,
    FileInfo,
    LoadFailures,
    apply_bad_file_policy,
    check_files,
    check_unique_ids,
)

CHECK_CACHE_NAME = "file_checks.sqlite"


def default_check_cache(cache_dir: str | Path | None) -> Path:
    """<cache_dir>/file_checks.sqlite, else $XDG_CACHE_HOME (or ~/.cache)/fast_ast/file_checks.sqlite."""
    if cache_dir:
        return Path(cache_dir) / CHECK_CACHE_NAME
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fast_ast" / CHECK_CACHE_NAME


class FileCorpusDataModule(AudioDataModule, metaclass=ABCMeta):
    def __init__(
        self,
        root: str | None = None,
        on_bad_file: str = "error",
        report_dir: str | None = None,
        cache_dir: str | None = None,
        check_cache: str | None = None,
        train_crop: str = "random",
        eval_crop: str = "start",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for key, mode in (("train_crop", train_crop), ("eval_crop", eval_crop)):
            if mode not in CROP_MODES:
                raise ValueError(f"data.{key} must be one of {CROP_MODES}, got {mode!r}")
        if on_bad_file not in ON_BAD_FILE:
            raise ValueError(f"data.on_bad_file must be one of {ON_BAD_FILE}, got {on_bad_file!r}")
        self.root = Path(root) if root else None
        self.on_bad_file, self.report_dir = on_bad_file, report_dir
        self.load_failures = LoadFailures(on_bad_file, report_dir)
        self.train_crop, self.eval_crop = train_crop, eval_crop
        self.store = AudioStore(self.sample_rate, cache_dir)
        self.check_cache = Path(check_cache) if check_cache else default_check_cache(cache_dir)
        self.clips: dict[str, list[Clip]] | None = None
        self.infos: dict[str, FileInfo] = {}

    def require_root(self) -> Path:
        """data.root, which must be an existing directory."""
        if self.root is None:
            raise ValueError(f"{type(self).__name__} needs data.root (the corpus directory)")
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} is not a directory")
        return self.root

    # ---- what a corpus implements ------------------------------------------------------------------
    @abstractmethod
    def list_clips(self, split: str) -> list[Clip]:
        """Every clip of `split` ('train', 'val', 'test') as listed by the corpus's metadata."""

    def extra_files(self) -> list[str]:
        """Other files the corpus reads (e.g. background noise); checked like the clips."""
        return []

    def make_dataset(self, split: str, clips: list[Clip], training: bool) -> Dataset:
        """The Dataset of `clips`; training=True adds random crops (and a corpus's own augmentation)."""
        return ClipDataset(
            clips,
            self.infos,
            self.store,
            self.clip_samples,
            self.num_classes,
            self.multilabel,
            crop=self.train_crop if training else self.eval_crop,
            failures=self.load_failures,
        )

    # ---- shared pipeline ---------------------------------------------------------------------------
    def checked_clips(self) -> dict[str, list[Clip]]:
        """Lists every split, checks all files once, applies on_bad_file; returns the usable clips per split."""
        listed = {split: self.list_clips(split) for split in SPLITS}
        for split in SPLITS:
            check_unique_ids(listed[split], f"{type(self).__name__} {split} split")
        paths = [clip.path for split in SPLITS for clip in listed[split]] + self.extra_files()
        self.infos = check_files(paths, CheckCache(self.check_cache), self.store, self.num_workers)
        excluded = apply_bad_file_policy(self.infos, self.on_bad_file, self.report_dir)
        kept = {split: [clip for clip in listed[split] if clip.path not in excluded] for split in SPLITS}
        for split in SPLITS:
            if not kept[split]:
                skipped = len(listed[split]) - len(kept[split])
                raise ValueError(f"{type(self).__name__}: the {split} split has no usable clips ({len(listed[split])} listed, {skipped} bad)")
        return kept

    def prepare_data(self) -> None:
        """Lightning runs this on one process per node before any setup: the file check (and the decoded
        copies) happen once there; other ranks' setup then reads the check cache."""
        if self.clips is None:
            self.clips = self.checked_clips()

    def setup(self, stage: str | None = None) -> None:
        if self.clips is None:
            self.clips = self.checked_clips()
        super().setup(stage)

    def build_split(self, split: str) -> Dataset:
        return self.make_dataset(split, self.clips[split], training=split == "train")

    def plain_split(self, split: str) -> Dataset:
        return self.make_dataset(split, self.clips[split], training=False)
