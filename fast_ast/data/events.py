"""`data=events`: long recordings with event annotations; frame-level and clip-level targets.

    <root>/train.csv, <root>/validation.csv, <root>/test.csv (optional; else test = validation)
        file,onset,offset,label      one row per event; file relative to <root>, times in seconds
        rec7.wav,,,                  a row with empty onset/offset/label lists a recording without events
    <root>/<file>                    the recordings, any length, rate and channel count

Training windows of clip_seconds start at uniformly random positions inside each recording
(ceil(duration / clip_seconds) windows per recording and epoch: a time-shift augmentation); validation
and test tile each recording with consecutive windows from 0 (the last one zero-padded).
Item: {"audio": [clip_samples], "target": [C] clip-level multi-hot, "frame_target": [C, event_bins],
"id": "<file>@<start s>"}, targets as in fast_ast.data.event_targets (bins tile the window evenly).
Classes: data.classes, else the sorted labels of the training annotations; with data.background_class
a last class marks bins without any event. Pair with model=ast_events (+experiment=events_ast).
"""

from __future__ import annotations

import bisect
import csv
import itertools
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fast_ast.data.audio_cache import AudioStore
from fast_ast.data.audio_io import fit_length
from fast_ast.data.clip_dataset import Clip
from fast_ast.data.event_targets import clip_targets, frame_targets
from fast_ast.data.file_corpus import FileCorpusDataModule
from fast_ast.data.validation import (
    CheckCache,
    FileInfo,
    LoadFailures,
    apply_bad_file_policy,
    check_files,
    check_known_labels,
    check_unique_ids,
)

log = logging.getLogger(__name__)

COLUMNS = ("file", "onset", "offset", "label")


def read_annotations(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """file -> [(onset, offset, label)] in file order; errors name the CSV line."""
    if not path.is_file():
        raise FileNotFoundError(f"event annotations {path} do not exist (CSV with columns {','.join(COLUMNS)})")
    recordings: dict[str, list[tuple[float, float, str]]] = {}
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (header {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            name, label = (row["file"] or "").strip(), (row["label"] or "").strip()
            onset, offset = (row["onset"] or "").strip(), (row["offset"] or "").strip()
            if not name:
                raise ValueError(f"{path} line {line}: empty file name")
            events = recordings.setdefault(name, [])
            if not (label or onset or offset):
                continue  # a recording without events
            try:
                times = float(onset), float(offset)
            except ValueError as error:
                raise ValueError(f"{path} line {line}: onset and offset must be numbers, got {onset!r}, {offset!r}") from error
            if not label or not 0 <= times[0] < times[1]:
                raise ValueError(f"{path} line {line}: an event needs a label and 0 <= onset < offset, got {row}")
            events.append((times[0], times[1], label))
    if not recordings:
        raise ValueError(f"{path} lists no recordings")
    return recordings


class EventWindows(Dataset):
    """Windows of annotated recordings (Clips whose target is a tuple of Events); see the module docstring."""

    def __init__(
        self,
        recordings: Sequence[Clip],
        infos: dict[str, FileInfo],
        store: AudioStore,
        clip_samples: int,
        num_event_classes: int,
        event_bins: int,
        background: bool,
        training: bool,
        failures: LoadFailures | None = None,
    ):
        self.recordings, self.infos, self.store = list(recordings), infos, store
        self.failures = failures or LoadFailures()
        self.clip_samples, self.event_bins = clip_samples, event_bins
        self.num_event_classes, self.background, self.training = num_event_classes, background, training
        self.sample_rate = store.sample_rate
        counts = [max(1, math.ceil(self.samples(r) / clip_samples)) for r in self.recordings]
        self.ends = list(itertools.accumulate(counts))  # cumulative window counts

    def samples(self, recording: Clip) -> int:
        return int(round(self.infos[recording.path].seconds * self.sample_rate))

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def window(self, index: int) -> tuple[Clip, int]:
        """(recording, first sample) of item `index`."""
        position = bisect.bisect_right(self.ends, index)
        recording = self.recordings[position]
        if self.training:
            excess = max(0, self.samples(recording) - self.clip_samples)
            return recording, int(torch.randint(excess + 1, ()))
        first = self.ends[position - 1] if position else 0
        return recording, (index - first) * self.clip_samples

    def __getitem__(self, index: int) -> dict:
        return self.failures.item(index, len(self), self.read)

    def read(self, index: int) -> dict:
        recording, start = self.window(index)
        audio = fit_length(self.store.load(self.infos[recording.path], start, self.clip_samples), self.clip_samples)
        seconds = self.clip_samples / self.sample_rate
        frames = frame_targets(recording.target, start / self.sample_rate, seconds, self.event_bins, self.num_event_classes, self.background)
        return {
            "audio": audio,
            "target": clip_targets(frames),
            "frame_target": frames,
            "id": f"{recording.id}@{start / self.sample_rate:.3f}",
        }


class EventsDataModule(FileCorpusDataModule):
    has_frame_targets = True  # batches carry frame_target: the model needs a frame-level head (model=ast_events)

    def __init__(
        self,
        train_csv: str = "train.csv",
        val_csv: str = "validation.csv",
        test_csv: str = "test.csv",
        classes: list[str] | None = None,
        background_class: str | None = None,
        event_bins: int = 100,
        **kwargs,
    ):
        super().__init__(**kwargs)
        root = self.require_root()
        if event_bins < 1:
            raise ValueError(f"data.event_bins must be >= 1, got {event_bins}")
        self.annotation_paths = {"train": root / train_csv, "val": root / val_csv, "test": root / test_csv}
        if not self.annotation_paths["test"].is_file():
            log.info("%s does not exist: the test split is the validation split", self.annotation_paths["test"])
            self.annotation_paths["test"] = self.annotation_paths["val"]
        if classes is None:
            train = read_annotations(self.annotation_paths["train"])
            self.event_classes = sorted({label for events in train.values() for _, _, label in events})
        else:
            self.event_classes = list(classes)  # train.csv is then only read to train (eval needs its split's only)
        if not self.event_classes:
            raise ValueError(f"{self.annotation_paths['train']} has no events and data.classes is not set")
        if background_class is not None and background_class in self.event_classes:
            raise ValueError(f"data.background_class={background_class!r} is also an event label")
        self.background_class, self.event_bins = background_class, event_bins
        self.class_names = self.event_classes + ([background_class] if background_class is not None else [])
        self.multilabel = True

    def list_clips(self, split: str) -> list[Clip]:
        path = self.annotation_paths[split]
        recordings = read_annotations(path)
        check_known_labels((label for events in recordings.values() for _, _, label in events), self.event_classes, str(path))
        index = {name: i for i, name in enumerate(self.event_classes)}
        return [
            Clip(str(self.root / name), tuple((on, off, index[label]) for on, off, label in events), Path(name).with_suffix("").as_posix())
            for name, events in recordings.items()
        ]

    def check_events_inside(self, split: str, recordings: list[Clip]) -> None:
        """Every event must start inside its recording (offsets past the end are clipped by the bins)."""
        for recording in recordings:
            seconds = self.infos[recording.path].seconds
            late = [event for event in recording.target if event[0] >= seconds]
            if late:
                onset, offset, label = late[0]
                raise ValueError(
                    f"{self.annotation_paths[split]}: {recording.path} lasts {seconds:.3f} s but has an event "
                    f"{self.event_classes[label]!r} at {onset}-{offset} s ({len(late)} such events)"
                )

    def split_recordings(self, split: str) -> list[Clip]:
        """The usable recordings of one split, only their files checked (what eval of a clip classifier reads);
        their FileInfos land in self.infos (durations), their audio comes from self.store."""
        listed = self.list_clips(split)
        check_unique_ids(listed, f"{type(self).__name__} {split} split")
        infos = check_files([clip.path for clip in listed], CheckCache(self.check_cache), self.store, self.num_workers)
        self.infos.update(infos)
        excluded = apply_bad_file_policy(infos, self.on_bad_file, self.report_dir)
        kept = [clip for clip in listed if clip.path not in excluded]
        if not kept:
            raise ValueError(f"{self.annotation_paths[split]}: no usable recordings ({len(listed)} listed, {len(excluded)} bad)")
        self.check_events_inside(split, kept)
        return kept

    def make_dataset(self, split: str, clips: list[Clip], training: bool) -> Dataset:
        self.check_events_inside(split, clips)
        return EventWindows(
            clips,
            self.infos,
            self.store,
            self.clip_samples,
            len(self.event_classes),
            self.event_bins,
            self.background_class is not None,
            training,
            self.load_failures,
        )

