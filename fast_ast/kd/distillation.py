"""Distillation: the training loss a classifier is given for knowledge distillation (the `kd` group).

build_model (fast_ast.modules.build) makes one from conf/kd/*.yaml and hands it to the classifier
(AudioClassifier(distillation=...)); the classifier's training loss calls it with the student's logits.
The teacher's logits come from any mix of sources, averaged (an ensemble, as CED and EfficientAT's
PaSST ensemble):
    kd.ckpt_path   online teachers (project checkpoints, Hugging Face AST directories): each scores the
                   student's augmented view in the same step (Teacher.view_logits: the same audio, mixup
                   partner and per-clip seeds, through its own frontend: the student's features bit for bit
                   when the frontend settings are equal)
    kd.path        logits files: stored views (`fast_ast.teacher views=E`: the teacher's logits of view
                   e mod E of each clip, replayed by the student's loader) or clean logits (one un-augmented
                   view per clip, keyed by clip id; under mixup their probabilities are mixed like the labels)
Unlabelled clips (batch "labelled" False, or kd.label_free) train on the distillation term alone.
Teachers are neither trained nor saved: a student checkpoint holds the student alone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from torch.utils.data import Dataset

from fast_ast.kd.losses import distillation_loss, teacher_targets
from fast_ast.kd.store import TeacherLogits, check_class_names, load_logits, quoted
from fast_ast.kd.teachers import Teacher, load_teacher
from fast_ast.kd.view_store import TeacherViews, is_views_file, load_views

log = logging.getLogger(__name__)

KD_SOURCES = ("logits", "teacher")
MISSING = ("error", "skip")
VIEW_KEYS = ("mixup", "mixup_alpha", "mixup_level", "freqm", "timem", "noise", "time_shift")


def as_list(value: Any) -> list[str]:
    """A path or a list of paths (None or empty: none)."""
    if value in (None, ""):
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def check_kd(kd: dict[str, Any]) -> None:
    """Raises ValueError naming the kd.* key of any invalid setting."""
    if kd.get("name") not in KD_SOURCES:
        raise ValueError(f"kd.name must be one of {KD_SOURCES} for a student (none trains a plain classifier), got {kd.get('name')!r}")
    lam = kd.get("lambda")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"kd.lambda (the weight of the label loss) must be a number in [0, 1], got {lam!r}")
    temperature = kd.get("temperature")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"kd.temperature must be a number > 0, got {temperature!r}")
    if kd.get("missing", "error") not in MISSING:
        raise ValueError(f"kd.missing must be one of {MISSING}, got {kd.get('missing')!r}")
    if not isinstance(kd.get("label_free", False), bool):
        raise ValueError(f"kd.label_free must be true or false, got {kd.get('label_free')!r}")
    if not as_list(kd.get("path")) and not as_list(kd.get("ckpt_path")):
        what = "kd.path, a teacher logits file (python -m fast_ast.teacher writes one)" if kd["name"] == "logits" else "kd.ckpt_path, a checkpoint of this project or a Hugging Face AST directory"
        raise ValueError(f"kd={kd['name']} needs {what}; a list of either or both is an ensemble")


def dataset_ids(dataset: Dataset) -> list[str]:
    """Every clip id of a split without reading audio where the dataset allows: its `clip_ids`, the ids of
    its `clips` (fast_ast.data.clip_dataset.ClipDataset), else item by item."""
    ids = getattr(dataset, "clip_ids", None)
    if ids is not None:
        return list(ids() if callable(ids) else ids)
    clips = getattr(dataset, "clips", None)
    if clips is not None and all(hasattr(clip, "id") for clip in clips):
        return [clip.id for clip in clips]
    return [dataset[index]["id"] for index in range(len(dataset))]


class Distillation:
    """The kd config (conf/kd/*.yaml) as a loss: __call__(student logits, label targets, batch, augment)."""

    def __init__(self, kd: dict[str, Any], class_names: list[str], multilabel: bool, sample_rate: int, augment: dict[str, Any]):
        check_kd(kd)
        self.config = dict(kd)
        self.lam, self.temperature, self.multilabel = float(kd["lambda"]), float(kd["temperature"]), multilabel
        self.missing, self.label_free = kd.get("missing", "error"), bool(kd.get("label_free", False))
        self.teachers: list[tuple[str, Teacher]] = []
        self.files: list[tuple[str, TeacherLogits]] = []
        self.views: list[tuple[str, TeacherViews]] = []
        for path in as_list(kd.get("ckpt_path")):
            teacher = load_teacher(path, kd.get("format", "auto"))
            check_class_names(teacher.class_names, class_names, f"kd.ckpt_path={path}")
            if teacher.sample_rate != sample_rate:
                raise ValueError(f"kd.ckpt_path={path}: the teacher takes {teacher.sample_rate} Hz audio, the corpus is {sample_rate} Hz")
            self.teachers.append((path, teacher))
        for path in as_list(kd.get("path")):
            store = load_views(path) if is_views_file(path) else load_logits(path)
            store.check_classes(class_names, f"kd.path={path}")
            (self.views if isinstance(store, TeacherViews) else self.files).append((path, store))
        self.check_views(augment)
        if self.files and (self.teachers or self.views) and augment.get("mixup", 0) > 0:
            raise ValueError("kd.path: clean logits files are mixed like the labels under mixup, consistent teachers score the mixed view: "
                             "combine them only with augment.mixup=0")
        log.info("knowledge distillation from %s (lambda %s, T %s)", "; ".join(self.teacher_names), self.lam, self.temperature)

    @property
    def teacher_names(self) -> list[str]:
        return [t.identity["teacher"] for _, t in self.teachers] + [s.teacher for _, s in self.files + self.views]

    def check_views(self, augment: dict[str, Any]) -> None:
        """Stored views must have been made with the student's augmentation, and agree on their seeds."""
        for path, store in self.views:
            stored = json.loads(store.metadata.get("augment", "{}"))
            differing = [f"{key}: stored {stored.get(key)!r}, student {augment.get(key)!r}" for key in VIEW_KEYS if stored.get(key) != augment.get(key)]
            if differing:
                raise ValueError(f"kd.path={path}: the views were made with other augment settings ({'; '.join(differing)}): set data.augment.* as the teacher command had them")
        if self.views:
            first_path, first = self.views[0]
            for path, store in self.views[1:]:
                if not torch.equal(store.view_seeds, first.view_seeds):
                    raise ValueError(f"kd.path: {path} and {first_path} store different views (view seeds): an ensemble of stored views needs the same views")

    @property
    def replay_seeds(self) -> torch.Tensor | None:
        """[E, N] view seeds the training loader must replay (None without stored views)."""
        return self.views[0][1].view_seeds if self.views else None

    def to(self, device: torch.device | str) -> "Distillation":
        for _, teacher in self.teachers:
            teacher.to(device)
        return self

    # ---- before training: every training clip must have a teacher prediction (kd.missing) ----------
    def check_dataset(self, train: Dataset) -> None:
        """Stored views must cover the split; clean files are checked id by id (kd.missing)."""
        for path, store in self.views:
            if store.clips != len(train):
                raise ValueError(f"kd.path={path}: stored views of {store.clips} clips, the training split has {len(train)}: use the teacher command's data settings")
        if self.files:
            ids = dataset_ids(train)
            for path, _ in self.files:
                self.check_missing(path, ids)

    def check_missing(self, path: str, clip_ids: list[str]) -> list[str]:
        """Training clip ids without a row in file `path`; raises for kd.missing=error, logs for skip."""
        missing = dict(self.files)[path].missing(clip_ids)
        if missing and self.missing == "error":
            raise ValueError(
                f"kd.path={path}: {len(missing)} of {len(clip_ids)} training clips have no teacher logits: "
                f"{quoted(missing)} (kd.missing=skip trains them on the label loss alone)"
            )
        if missing:
            log.warning("kd.path=%s: %d of %d training clips have no teacher logits (%s); kd.missing=skip: label loss alone for them",
                        path, len(missing), len(clip_ids), quoted(missing))
        return missing

    # ---- training ------------------------------------------------------------------------------
    def file_logits(self, clip_ids: list[str], device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Logits [B, C] of each clean file and [B] presence (a clip needs a row in every file)."""
        rows = [store.lookup(list(clip_ids), device) for _, store in self.files]
        present = torch.stack([p for _, p in rows]).all(dim=0)
        if self.missing == "error" and not bool(present.all()):
            absent = [clip_id for clip_id, has in zip(clip_ids, present.tolist()) if not has]
            raise ValueError(f"kd.path: no teacher logits for clips {quoted(absent)} (kd.missing=error)")
        return [logits for logits, _ in rows], present

    def teacher_probs(self, batch: dict, augment) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(teacher probabilities [B, C], has_teacher [B] bool, clips without a teacher row) on the batch's device."""
        device = batch["audio"].device
        if self.files:
            parts, present = self.file_logits(batch["id"], device)
            if not (self.teachers or self.views):
                probs = teacher_targets(torch.stack(parts).mean(dim=0), self.temperature, self.multilabel)
                if "mix_weight" in batch:  # clean logits: mix the partner's probabilities like the labels
                    partner, partner_present = self.file_logits(batch["mix_id"], device)
                    weight = batch["mix_weight"].view(-1, 1)
                    probs = weight * probs + (1 - weight) * teacher_targets(torch.stack(partner).mean(dim=0), self.temperature, self.multilabel)
                    present = present & (partner_present | (batch["mix_weight"] >= 1))
                return probs, present, (~present).sum()
            present_all = present
        else:
            parts, present_all = [], torch.ones(batch["audio"].shape[0], dtype=torch.bool, device=device)
        parts += [teacher.view_logits(batch, augment).float() for _, teacher in self.teachers]
        parts += [store.lookup(batch["index"], batch["view"], list(batch["id"]), f"kd.path={path}").to(device) for path, store in self.views]
        logits = torch.stack(parts).mean(dim=0)
        return teacher_targets(logits, self.temperature, self.multilabel), present_all, (~present_all).sum()

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, batch: dict, augment) -> tuple[torch.Tensor, dict]:
        """logits [B, C] of the student, label targets [B, C] float (mixed in the dataset under mixup);
        returns (loss, values to log)."""
        probs, present, missing = self.teacher_probs(batch, augment)
        labelled = batch.get("labelled")
        labelled = torch.ones_like(present) if labelled is None else labelled.to(present.device).bool()
        if self.label_free:
            labelled = torch.zeros_like(present)
        losses = distillation_loss(logits, targets, probs, present, labelled, self.lam, self.temperature, self.multilabel)
        logs = {"train/loss": losses["loss"], "train/label_loss": losses["label_loss"], "train/kd_loss": losses["kd_loss"]}
        if self.files:
            logs["train/kd_missing"] = missing.float()
        return losses["loss"], logs
