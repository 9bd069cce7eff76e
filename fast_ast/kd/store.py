"""Teacher logits files: one row of C logits per clip, keyed by the clip's id (batch["id"]).

Two layouts, no pickle in either:
    <name>.safetensors   tensor "logits" [N, C] float32; metadata (str -> str): "ids" (JSON list, row order),
                         "class_names" (JSON list), "teacher" (identity), any further provenance entries
    <name>.npy           [N, C] float32 logits, with <name>.json next to it:
                         {"ids": [...], "class_names": [...], "teacher": "...", ...}
The logits are the teacher's raw outputs (before sigmoid / softmax); the temperature is applied in training.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT_VERSION = "1"
SUFFIXES = (".safetensors", ".npy")
SHOWN = 10  # ids / class names quoted in an error message


def index_path(npy_path: Path) -> Path:
    """The clip-id index written next to a .npy logits file."""
    return npy_path.with_suffix(".json")


def quoted(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f", ... ({len(items)} in all)" if len(items) > SHOWN else "")


@dataclass
class TeacherLogits:
    """Teacher logits [N, C] (CPU float32), the clip id of every row, the class list and provenance."""

    logits: torch.Tensor
    ids: list[str]
    class_names: list[str]
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.logits.dim() != 2:
            raise ValueError(f"teacher logits must be [clips, classes], got shape {tuple(self.logits.shape)}")
        if self.logits.shape[0] != len(self.ids):
            raise ValueError(f"{self.logits.shape[0]} rows of teacher logits for {len(self.ids)} clip ids")
        if self.logits.shape[1] != len(self.class_names):
            raise ValueError(f"{self.logits.shape[1]} teacher logits per clip for {len(self.class_names)} class names")
        self.logits = self.logits.float().cpu().contiguous()
        self.row = {clip_id: row for row, clip_id in enumerate(self.ids)}
        if len(self.row) != len(self.ids):
            repeated = sorted(clip_id for clip_id, count in Counter(self.ids).items() if count > 1)
            raise ValueError(f"teacher logits repeat clip ids: {quoted(repeated)}")

    @property
    def teacher(self) -> str:
        return self.metadata.get("teacher", "unknown")

    def check_classes(self, class_names: list[str], source: str) -> None:
        """Raises ValueError unless the teacher's classes are the corpus's, in the same order."""
        check_class_names(self.class_names, class_names, source)

    def missing(self, clip_ids: list[str]) -> list[str]:
        """The clip ids (in the given order) that have no teacher row."""
        return [clip_id for clip_id in clip_ids if clip_id not in self.row]

    def lookup(self, clip_ids: list[str], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, C] on device, has_teacher [B] bool on device); rows of clips without one are zero."""
        rows = torch.tensor([self.row.get(clip_id, -1) for clip_id in clip_ids], dtype=torch.long)
        present = rows >= 0
        logits = self.logits[rows.clamp(min=0)] * present.unsqueeze(-1)
        return logits.to(device, non_blocking=True), present.to(device, non_blocking=True)


def check_class_names(teacher: list[str], corpus: list[str], source: str) -> None:
    """Teacher and corpus must list the same classes in the same order (names the first differences)."""
    if len(teacher) != len(corpus):
        raise ValueError(f"{source}: the teacher predicts {len(teacher)} classes, the corpus has {len(corpus)}")
    differences = [f"{i}: teacher {a!r} vs corpus {b!r}" for i, (a, b) in enumerate(zip(teacher, corpus)) if a != b]
    if differences:
        order = " (same names, another order)" if sorted(teacher) == sorted(corpus) else ""
        raise ValueError(f"{source}: the teacher's classes differ from the corpus's{order} at {quoted(differences)}")


def save_logits(path: str | Path, store: TeacherLogits) -> Path:
    """Writes `store` to a .safetensors file, or a .npy file plus its .json index."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"teacher logits file {path} must end in one of {SUFFIXES}")
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {**store.metadata, "format_version": FORMAT_VERSION}
    if path.suffix == ".safetensors":
        metadata = {**{k: str(v) for k, v in info.items()}, "ids": json.dumps(store.ids), "class_names": json.dumps(store.class_names)}
        save_file({"logits": store.logits}, str(path), metadata=metadata)
    else:
        np.save(path, store.logits.numpy(), allow_pickle=False)
        index = {**info, "ids": store.ids, "class_names": store.class_names}
        index_path(path).write_text(json.dumps(index, indent=1) + "\n")
    return path


def read_json(text: str, what: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} is not valid JSON: {error}") from error


def string_list(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return value


def load_logits(path: str | Path) -> TeacherLogits:
    """Reads a file written by save_logits (or by fast_ast.kd.importer)."""
    path = Path(path).expanduser()
    if path.suffix not in SUFFIXES:
        raise ValueError(f"teacher logits file {path} must end in one of {SUFFIXES}")
    if not path.is_file():
        raise FileNotFoundError(f"teacher logits file {path} does not exist")
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            if "logits" not in handle.keys():
                raise ValueError(f"{path}: no 'logits' tensor (tensors: {', '.join(handle.keys())})")
            logits = handle.get_tensor("logits")
        lists = {}
        for key in ("ids", "class_names"):
            if key not in metadata:
                raise ValueError(f"{path}: metadata has no '{key}' entry")
            lists[key] = string_list(read_json(metadata.pop(key), f"{path}: metadata '{key}'"), f"{path}: metadata '{key}'")
    else:
        index_file = index_path(path)
        if not index_file.is_file():
            raise FileNotFoundError(f"{path}: its clip-id index {index_file} does not exist")
        index = read_json(index_file.read_text(), str(index_file))
        if not isinstance(index, dict):
            raise ValueError(f"{index_file} must hold a JSON object with 'ids' and 'class_names'")
        lists = {}
        for key in ("ids", "class_names"):
            if key not in index:
                raise ValueError(f"{index_file}: no '{key}' entry")
            lists[key] = string_list(index.pop(key), f"{index_file}: '{key}'")
        logits = torch.from_numpy(np.load(path, allow_pickle=False))
        metadata = {k: v if isinstance(v, str) else json.dumps(v) for k, v in index.items()}
    ids, class_names = lists["ids"], lists["class_names"]
    try:
        return TeacherLogits(logits, ids, class_names, metadata)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
