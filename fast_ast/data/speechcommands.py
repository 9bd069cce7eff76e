"""`data=speechcommands`: Speech Commands v2 (Warden 2018) in its release layout — no conversion.

    <root>/<word>/<speaker>_nohash_<n>.wav    35 word folders, 1 s clips at 16 kHz
    <root>/validation_list.txt                <word>/<file>.wav per line: the validation split
    <root>/testing_list.txt                   the test split; train = every other clip
    <root>/_background_noise_/*.wav           long noise recordings

task 35: the 35 words, in the order of the label map (AST's class_labels_indices.csv).
task 12: the v2 12-class task — the 10 command words, _unknown_ (the other 25 words, subsampled to
`unknown_fraction` of the command clips per split) and _silence_ (1 s segments of the background
recordings, `silence_fraction` of the command clips; segment k of a recording belongs to train when
k % 10 < 8, validation when 8, test when 9, so no segment is in two splits).
Training augmentation: with probability background.prob, a random 1 s segment of a random background
recording, scaled by U(0, background.volume), is added to the clip (the TensorFlow recipe uses 0.8, 0.1).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import soundfile as sf
import torch
from torch.utils.data import Dataset

from fast_ast.data.clip_dataset import Clip
from fast_ast.data.file_corpus import FileCorpusDataModule
from fast_ast.data.labels import packaged_label_csv, read_label_csv
from fast_ast.data.validation import check_known_labels

BACKGROUND_DIR = "_background_noise_"
LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
TASKS = (35, 12)
SEGMENT_SPLIT = ("train",) * 8 + ("val", "test")  # split of background segment k: SEGMENT_SPLIT[k % 10]


class BackgroundMixer:
    """[S] -> [S]: with probability `prob`, adds a random window of a random noise recording times U(0, volume)."""

    def __init__(self, noises: list[torch.Tensor], prob: float, volume: float):
        self.noises, self.prob, self.volume = noises, prob, volume

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        if not self.noises or float(torch.rand(())) >= self.prob:
            return waveform
        noise = self.noises[int(torch.randint(len(self.noises), ()))]
        length = waveform.shape[-1]
        if noise.shape[-1] < length:
            noise = torch.nn.functional.pad(noise, (0, length - noise.shape[-1]))
        start = int(torch.randint(noise.shape[-1] - length + 1, ()))
        return waveform + float(torch.rand(())) * self.volume * noise[start : start + length]


class SpeechCommandsDataModule(FileCorpusDataModule):
    def __init__(
        self,
        task: int = 35,
        label_csv: str | None = None,
        unknown_fraction: float = 0.1,
        silence_fraction: float = 0.1,
        background: dict | None = None,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if task not in TASKS:
            raise ValueError(f"data.task must be one of {TASKS}, got {task!r}")
        background = {"prob": 0.0, "volume": 0.1, **(background or {})}
        if not 0 <= background["prob"] <= 1 or background["volume"] < 0:
            raise ValueError(f"data.background needs 0 <= prob <= 1 and volume >= 0, got {background}")
        for key, value in (("unknown_fraction", unknown_fraction), ("silence_fraction", silence_fraction)):
            if value < 0:
                raise ValueError(f"data.{key} must be >= 0, got {value}")
        self.task, self.seed, self.background = task, seed, background
        self.unknown_fraction, self.silence_fraction = unknown_fraction, silence_fraction
        root = self.require_root()
        self.words = [row.display_name for row in read_label_csv(label_csv or packaged_label_csv("speechcommands"))]
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
        check_known_labels(folders, self.words, f"{root} (word folders)")
        self.class_names = list(self.words) if task == 35 else [SILENCE, UNKNOWN, *COMMANDS]
        self.multilabel = False
        self.noise_paths = sorted(str(p) for p in (root / BACKGROUND_DIR).glob("*.wav")) if (root / BACKGROUND_DIR).is_dir() else []
        if task == 12 and silence_fraction > 0 and not self.noise_paths:
            raise FileNotFoundError(f"data.task=12 makes _silence_ clips from {root / BACKGROUND_DIR}/*.wav: none found")

    def read_list(self, split: str) -> list[str]:
        """Relative paths (<word>/<file>.wav) of a list file; unknown words are an error naming them."""
        path = self.root / LISTS[split]
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (Speech Commands v2 ships validation_list.txt and testing_list.txt)")
        entries = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        check_known_labels((entry.split("/")[0] for entry in entries), self.words, str(path))
        return entries

    def word_files(self, split: str) -> list[str]:
        held_out = {split_name: self.read_list(split_name) for split_name in LISTS}
        if split in LISTS:
            return held_out[split]
        excluded = set(held_out["val"]) | set(held_out["test"])
        return [
            path.relative_to(self.root).as_posix()
            for word in self.words
            if (self.root / word).is_dir()
            for path in sorted((self.root / word).glob("*.wav"))
            if path.relative_to(self.root).as_posix() not in excluded
        ]

    def silence_segments(self, split: str) -> list[tuple[str, int]]:
        """(recording, first sample) of the 1 s background segments that belong to `split`."""
        segments = []
        for path in self.noise_paths:
            try:
                info = sf.info(path)
            except Exception:
                continue  # the file check reports it
            seconds = info.frames / info.samplerate
            for k in range(int(seconds // self.clip_seconds)):
                if SEGMENT_SPLIT[k % len(SEGMENT_SPLIT)] == split:
                    segments.append((path, k * self.clip_samples))
        return segments

    def word_clip(self, entry: str) -> Clip:
        """The clip of list entry <word>/<file>.wav, labelled for the task."""
        word = entry.split("/")[0]
        label = word if self.task == 35 or word in COMMANDS else UNKNOWN
        return Clip(str(self.root / entry), self.class_names.index(label), entry.rsplit(".", 1)[0])

    def list_clips(self, split: str) -> list[Clip]:
        clips = [self.word_clip(entry) for entry in self.word_files(split)]
        if self.task == 35:
            return clips
        unknown_index = self.class_names.index(UNKNOWN)
        commands = [clip for clip in clips if clip.target != unknown_index]
        unknown = [clip for clip in clips if clip.target == unknown_index]
        rng = random.Random(f"{self.seed}-{split}")
        rng.shuffle(unknown)
        unknown = unknown[: math.ceil(self.unknown_fraction * len(commands))]
        segments = self.silence_segments(split)
        count = math.ceil(self.silence_fraction * len(commands)) if segments else 0
        silence = [
            Clip(path, self.class_names.index(SILENCE), f"{SILENCE}/{Path(path).stem}@{start}#{i}", start, self.clip_samples)
            for i, (path, start) in ((i, segments[i % len(segments)]) for i in range(count))
        ]
        return commands + unknown + silence

    def extra_files(self) -> list[str]:
        return list(self.noise_paths)

    def make_dataset(self, split: str, clips: list[Clip], training: bool) -> Dataset:
        dataset = super().make_dataset(split, clips, training)
        if training and self.background["prob"] > 0:
            noises = [self.store.load(self.infos[path]) for path in self.noise_paths if self.infos[path].ok]
            dataset.transform = BackgroundMixer(noises, self.background["prob"], self.background["volume"])
        return dataset

