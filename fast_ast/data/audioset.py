"""`data=audioset`: AudioSet (Gemmeke et al. 2017) from AST-style datafiles — no conversion.

    datafile JSON  {"data": [{"wav": "<path>", "labels": "/m/09x0r,/m/05zppz"}, ...]}  (optional "video_id")
    label map      class_labels_indices.csv (index, mid, display_name); the packaged 527-class map by default

Relative "wav" paths are resolved against data.root when it is set, else against the datafile's folder.
Targets are multi-hot [527]; val/mAP is the monitored metric. With balanced_sampler the training clips
are drawn with replacement by AST's sample weights: label weight w_c = 1000 / (n_c + 0.01) with n_c the
training clips carrying label c, and a clip's weight the sum of its labels' weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import WeightedRandomSampler

from fast_ast.data.clip_dataset import Clip
from fast_ast.data.file_corpus import FileCorpusDataModule
from fast_ast.data.labels import packaged_label_csv, read_label_csv
from fast_ast.data.validation import check_known_labels


def sample_weights(label_sets: list[tuple[int, ...]], num_classes: int) -> torch.Tensor:
    """AST's balanced-sampling weights: [N] float64, clip i -> sum over its labels c of 1000 / (n_c + 0.01)."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for labels in label_sets:
        counts[list(labels)] += 1
    label_weight = 1000.0 / (counts + 0.01)
    return torch.stack([label_weight[list(labels)].sum() for labels in label_sets]) if label_sets else torch.zeros(0, dtype=torch.float64)


def read_datafile(path: Path) -> list[dict]:
    """The entries of an AST datafile; errors name the file and the entry."""
    if not path.is_file():
        raise FileNotFoundError(f"AudioSet datafile {path} does not exist")
    try:
        entries = json.loads(path.read_text())["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not an AST datafile {{'data': [{{'wav': ..., 'labels': ...}}]}} ({error!r})") from error
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("wav"), str) or not isinstance(entry.get("labels"), str):
            raise ValueError(f"{path}: entry {number} needs string 'wav' and 'labels', got {entry!r}")
    return entries


class AudioSetDataModule(FileCorpusDataModule):
    def __init__(
        self,
        train_json: str,
        val_json: str,
        test_json: str | None = None,
        label_csv: str | None = None,
        balanced_sampler: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.datafiles = {"train": Path(train_json), "val": Path(val_json), "test": Path(test_json or val_json)}
        labels = read_label_csv(label_csv or packaged_label_csv("audioset"))
        self.class_names = [row.display_name for row in labels]
        self.mid_index = {row.mid: row.index for row in labels}
        self.multilabel = True
        self.balanced_sampler = balanced_sampler

    def resolve(self, wav: str, datafile: Path) -> str:
        path = Path(wav)
        if path.is_absolute():
            return str(path)
        return str((self.root if self.root is not None else datafile.parent) / path)

    def list_clips(self, split: str) -> list[Clip]:
        datafile = self.datafiles[split]
        entries = read_datafile(datafile)
        mids = [[mid.strip() for mid in entry["labels"].split(",") if mid.strip()] for entry in entries]
        check_known_labels((mid for entry_mids in mids for mid in entry_mids), self.mid_index, str(datafile))
        clips = []
        for entry, entry_mids in zip(entries, mids):
            path = self.resolve(entry["wav"], datafile)
            clip_id = str(entry.get("video_id") or Path(path).stem)
            clips.append(Clip(path, tuple(sorted({self.mid_index[mid] for mid in entry_mids})), clip_id))
        return clips

    def train_sampler(self):
        if not self.balanced_sampler:
            return None
        weights = sample_weights([clip.target for clip in self.clips["train"]], self.num_classes)
        return WeightedRandomSampler(weights, num_samples=len(weights), replacement=True)
