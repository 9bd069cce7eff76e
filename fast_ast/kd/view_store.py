"""Stored teacher views (CED-style): per training clip and view, the view's seed and the teacher's logits
of that exact augmented view, written by `python -m fast_ast.teacher views=E`.

One .safetensors file (the format of fast_ast.kd.store, plus the tensors below); E views, N clips, C classes:
    view_seeds     [E, N] int64    the seed of view e of clip n (fast_ast.data.views.view_seed)
    id_hashes      [E, N] int64    hash of the item id the teacher scored (checked against the student's batch)
    logits         [E, N, C] float32                        (topk = 0: every logit), or
    topk_values    [E, N, K] float16, topk_indices [E, N, K] int16 (int32 beyond 32767 classes): the K largest
                   logits, as CED stores them; the other classes read back as -inf (probability 0)
metadata: "format": "views", "ids" (JSON, the item ids of view 0 in index order), "class_names", "teacher",
"views", "topk", "augment" and "features" (JSON: the view settings the student must share), provenance.
Lookup: a student batch holds "index" and "view" (fast_ast.data.views), so rows are gathered by position.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from fast_ast.kd.store import check_class_names, quoted

VIEW_TENSORS = ("view_seeds", "id_hashes")


def id_hash(clip_id: str) -> int:
    """A signed 64-bit hash of an item id (blake2b, stable across processes and machines)."""
    return int.from_bytes(hashlib.blake2b(clip_id.encode(), digest_size=8).digest(), "little", signed=True)


def topk_logits(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., C] -> (values [..., K] float16, indices [..., K] int16/int32) of the K largest logits."""
    values, indices = logits.float().topk(k, dim=-1)
    index_type = torch.int16 if logits.shape[-1] <= torch.iinfo(torch.int16).max else torch.int32
    return values.half(), indices.to(index_type)


def dense_logits(values: torch.Tensor, indices: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Top-k (values [..., K], indices [..., K]) -> [..., C] float32, -inf outside the top k."""
    dense = torch.full((*values.shape[:-1], num_classes), float("-inf"))
    return dense.scatter(-1, indices.long(), values.float())


@dataclass
class TeacherViews:
    """Stored views; exactly one of `logits` or (`topk_values`, `topk_indices`) is set."""

    view_seeds: torch.Tensor
    id_hashes: torch.Tensor
    class_names: list[str]
    metadata: dict[str, str] = field(default_factory=dict)
    logits: torch.Tensor | None = None
    topk_values: torch.Tensor | None = None
    topk_indices: torch.Tensor | None = None

    def __post_init__(self):
        if self.view_seeds.dim() != 2 or self.view_seeds.shape != self.id_hashes.shape:
            raise ValueError(f"view_seeds {tuple(self.view_seeds.shape)} and id_hashes {tuple(self.id_hashes.shape)} must both be [views, clips]")
        if (self.logits is None) == (self.topk_values is None):
            raise ValueError("stored views hold either 'logits' or 'topk_values' + 'topk_indices'")
        scores = self.logits if self.logits is not None else self.topk_values
        if scores.shape[:2] != self.view_seeds.shape:
            raise ValueError(f"logits {tuple(scores.shape)} do not match {tuple(self.view_seeds.shape)} views x clips")
        if self.logits is not None and self.logits.shape[2] != len(self.class_names):
            raise ValueError(f"{self.logits.shape[2]} logits per view for {len(self.class_names)} class names")
        if self.topk_values is not None and (self.topk_indices is None or self.topk_indices.shape != self.topk_values.shape):
            raise ValueError("topk_indices must have the shape of topk_values")

    @property
    def views(self) -> int:
        return self.view_seeds.shape[0]

    @property
    def clips(self) -> int:
        return self.view_seeds.shape[1]

    @property
    def teacher(self) -> str:
        return self.metadata.get("teacher", "unknown")

    def check_classes(self, class_names: list[str], source: str) -> None:
        check_class_names(self.class_names, class_names, source)

    def lookup(self, index: torch.Tensor, view: torch.Tensor, clip_ids: list[str], source: str) -> torch.Tensor:
        """Teacher logits [B, C] float32 (CPU) of view `view` [B] of clips `index` [B]; the stored item ids
        must be the batch's (else the student's data settings are not the teacher command's)."""
        index, view = index.long().cpu(), view.long().cpu()
        if int(index.max()) >= self.clips or int(view.max()) >= self.views:
            raise ValueError(f"{source}: the store holds {self.views} views of {self.clips} clips, the batch asks for clip {int(index.max())} view {int(view.max())}")
        expected = self.id_hashes[view, index]
        actual = torch.tensor([id_hash(clip_id) for clip_id in clip_ids], dtype=torch.long)
        if not torch.equal(expected, actual):
            wrong = [f"{clip_id} (clip {i}, view {v})" for clip_id, i, v, ok in zip(clip_ids, index.tolist(), view.tolist(), (expected == actual).tolist()) if not ok]
            raise ValueError(f"{source}: the teacher scored other items than {quoted(wrong)}: train with the data settings of the teacher command")
        if self.logits is not None:
            return self.logits[view, index]
        return dense_logits(self.topk_values[view, index], self.topk_indices[view, index], len(self.class_names))


def save_views(path: str | Path, store: TeacherViews) -> Path:
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"stored views {path} must be a .safetensors file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"view_seeds": store.view_seeds.contiguous(), "id_hashes": store.id_hashes.contiguous()}
    if store.logits is not None:
        tensors["logits"] = store.logits.float().contiguous()
    else:
        tensors.update(topk_values=store.topk_values.contiguous(), topk_indices=store.topk_indices.contiguous())
    metadata = {**store.metadata, "format": "views", "class_names": json.dumps(store.class_names)}
    save_file(tensors, str(path), metadata=metadata)
    return path


def is_views_file(path: str | Path) -> bool:
    """Whether `path` is a .safetensors file of stored views (not a clean logits file)."""
    path = Path(path).expanduser()
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    with safe_open(str(path), framework="pt") as handle:
        return (handle.metadata() or {}).get("format") == "views"


def load_views(path: str | Path) -> TeacherViews:
    path = Path(path).expanduser()
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        names = set(handle.keys())
        absent = [name for name in VIEW_TENSORS if name not in names]
        if absent or not ({"logits"} <= names or {"topk_values", "topk_indices"} <= names):
            raise ValueError(f"{path}: stored views need tensors {VIEW_TENSORS} and logits or topk_values + topk_indices; it has {sorted(names)}")
        tensors = {name: handle.get_tensor(name) for name in names}
    try:
        class_names = json.loads(metadata.pop("class_names"))
    except (KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: metadata 'class_names' missing or not JSON ({error})") from None
    try:
        return TeacherViews(
            tensors["view_seeds"], tensors["id_hashes"], class_names, metadata,
            tensors.get("logits"), tensors.get("topk_values"), tensors.get("topk_indices"),
        )
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
