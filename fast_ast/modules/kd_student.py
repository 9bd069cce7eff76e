"""KDStudent: an AudioClassifier (any backbone it can build, ToMe on or off) trained against a teacher.

The teacher's logits [B, C] for a training batch come from a logits file looked up by batch["id"]
(kd.name=logits) or from a frozen teacher network run on the clean batch audio (kd.name=teacher). They
become targets with the temperature (fast_ast.kd.losses.teacher_targets), are mixed with the same MixPlan
as the labels, and enter fast_ast.kd.losses.distillation_loss. Logged: train/label_loss, train/kd_loss,
train/loss (their lambda-weighted sum) and, for a logits file, train/kd_missing (clips per epoch without
a teacher prediction).

The teacher is not a registered submodule: it is neither trained nor saved, so a student checkpoint holds
the student alone and fast_ast.modules.checkpoint.load_classifier loads it as a plain classifier.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.utils.data import Dataset

from fast_ast.frontend.augment import MixPlan
from fast_ast.kd.losses import distillation_loss, mixed_presence, teacher_targets
from fast_ast.kd.importer import id_rule_hint
from fast_ast.kd.store import TeacherLogits, check_class_names, load_logits, quoted
from fast_ast.kd.teachers import Teacher, load_teacher
from fast_ast.modules.classifier import AudioClassifier

log = logging.getLogger(__name__)

KD_SOURCES = ("logits", "teacher")
MISSING = ("error", "skip")


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
    if kd["name"] == "logits":
        if kd.get("missing") not in MISSING:
            raise ValueError(f"kd.missing must be one of {MISSING}, got {kd.get('missing')!r}")
        if not kd.get("path"):
            raise ValueError("kd=logits needs kd.path, the teacher logits file (python -m fast_ast.teacher writes one)")
    elif not kd.get("ckpt"):
        raise ValueError("kd=teacher needs kd.ckpt, a checkpoint of this project or a Hugging Face AST directory")


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


class KDStudent(AudioClassifier):
    """AudioClassifier arguments plus `kd`, the kd config group as a dict (conf/kd/*.yaml)."""

    def __init__(self, kd: dict[str, Any], **classifier: Any):
        super().__init__(**classifier)
        check_kd(kd)
        self.kd = dict(kd)
        self.kd_lambda, self.temperature = float(kd["lambda"]), float(kd["temperature"])
        self.store: TeacherLogits | None = None
        self.teacher: Teacher | None = None
        if kd["name"] == "logits":
            self.store = load_logits(kd["path"])
            self.store.check_classes(self.class_names, f"kd.path={kd['path']}")
        else:
            teacher = load_teacher(kd["ckpt"], kd.get("format", "auto"))
            check_class_names(teacher.class_names, self.class_names, f"kd.ckpt={kd['ckpt']}")
            if teacher.sample_rate != self.hparams.sample_rate:
                raise ValueError(
                    f"kd.ckpt={kd['ckpt']}: the teacher takes {teacher.sample_rate} Hz audio, the corpus is {self.hparams.sample_rate} Hz"
                )
            self.teacher = teacher
        log.info("knowledge distillation from %s (lambda %s, T %s)", self.teacher_name, self.kd_lambda, self.temperature)

    @property
    def teacher_name(self) -> str:
        return self.store.teacher if self.store is not None else self.teacher.identity["teacher"]

    # ---- before training: every training clip must have a teacher prediction (kd.missing) ----------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None)
        if stage == "fit" and self.store is not None and datamodule is not None:
            self.check_missing(dataset_ids(datamodule.datasets["train"]))

    def check_missing(self, clip_ids: list[str]) -> list[str]:
        """Training clip ids without a teacher prediction; raises for kd.missing=error, logs for skip."""
        missing = self.store.missing(clip_ids)
        if missing and self.kd["missing"] == "error":
            raise ValueError(
                f"kd.path={self.kd['path']}: {len(missing)} of {len(clip_ids)} training clips have no teacher logits: "
                f"{quoted(missing)}; {id_rule_hint(self.store.ids, missing)} (kd.missing=skip trains them on the label loss alone)"
            )
        if missing:
            log.warning(
                "kd.path=%s: %d of %d training clips have no teacher logits (%s); kd.missing=skip: label loss alone for them",
                self.kd["path"], len(missing), len(clip_ids), quoted(missing),
            )
        return missing

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)

    # ---- training ------------------------------------------------------------------------------
    def teacher_logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(teacher logits [B, C], has_teacher [B] bool) for a training batch, on the batch's device."""
        audio = batch["audio"]
        if self.teacher is not None:
            logits = self.teacher(audio)
            return logits, torch.ones(audio.shape[0], dtype=torch.bool, device=audio.device)
        logits, present = self.store.lookup(list(batch["id"]), audio.device)
        if self.kd["missing"] == "error" and not bool(present.all()):
            absent = [clip_id for clip_id, has in zip(batch["id"], present.tolist()) if not has]
            raise ValueError(f"kd.path={self.kd['path']}: no teacher logits for clips {quoted(absent)} (kd.missing=error)")
        return logits, present

    def training_loss(self, logits: torch.Tensor, batch: dict, plan: MixPlan | None) -> tuple[torch.Tensor, dict]:
        labels = self.target_matrix(batch["target"])
        teacher, present = self.teacher_logits(batch)
        probs = teacher_targets(teacher, self.temperature, self.loss_name == "bce")
        if self.store is not None:
            missing = (~present).sum().float()
            self.log("train/kd_missing", missing, on_step=False, on_epoch=True, reduce_fx="sum", batch_size=logits.shape[0])
        if plan is not None:
            labels, probs = plan(labels), plan(probs)
            present = mixed_presence(present, plan.partner, plan.weight)
        losses = distillation_loss(logits, labels, probs, present, self.kd_lambda, self.temperature, self.loss_name == "bce")
        logs = {"train/loss": losses["loss"], "train/label_loss": losses["label_loss"], "train/kd_loss": losses["kd_loss"]}
        return losses["loss"], logs
