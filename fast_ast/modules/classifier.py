"""AudioClassifier: the LightningModule for any backbone (AST, ToMe-AST, ...) on any corpus.

waveform [B, S] --frontend--> features [B, T, F] --backbone--> logits [B, C].
Single-label targets [B] long use cross-entropy (soft targets after mixup) or, with loss=bce (AST's
--loss BCE), BCE on the one-hot targets and sigmoid scores; multi-label targets [B, C] use BCE. All
constructor arguments are plain containers so checkpoints rebuild the model on their own
(see fast_ast.modules.checkpoint.load_classifier); `backbone` is a registry spec ({"name": ..., size
keys}, fast_ast.backbones.registry), never something to instantiate. Knowledge distillation is a loss
object the classifier is given (`distillation`, fast_ast.kd.distillation.Distillation, built from the kd
group by fast_ast.modules.build): not a hyperparameter, never saved.
Training: the batch's augmented view (Augment.view, seeded per clip) -> backbone -> training_loss:
label loss over labelled clips (batch "labelled", default all), or the distillation loss.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from fast_ast.backbones.registry import build_backbone
from fast_ast.backbones.weights import load_pretrained
from fast_ast.frontend.augment import Augment
from fast_ast.frontend.fbank import FbankFrontend
from fast_ast.kd.losses import label_loss_per_clip
from fast_ast.modules.compile import compile_backbone
from fast_ast.modules.finetune import apply_finetune
from fast_ast.modules.metrics import build_metrics, clip_metric_names, finalize
from fast_ast.modules.optim import build_optimizer, build_scheduler, check_optim
from fast_ast.tome import apply_tome


class AudioClassifier(L.LightningModule):
    def __init__(
        self,
        backbone: dict[str, Any],
        num_classes: int,
        class_names: list[str],
        multilabel: bool,
        sample_rate: int,
        clip_samples: int,
        features: dict[str, Any],
        augment: dict[str, Any],
        optim: dict[str, Any],
        finetune: dict[str, Any] | None = None,
        tome: dict[str, Any] | None = None,
        pretrained: str | None = None,
        pretrained_format: str = "auto",
        pretrained_prefix: str | None = None,
        loss: str = "auto",
        distillation=None,
        compile: bool = False,
        compile_backend: str = "inductor",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["distillation"])
        self.distillation = distillation
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        check_optim(optim)
        self.num_classes, self.multilabel, self.class_names = num_classes, multilabel, list(class_names)
        if loss not in ("auto", "ce", "bce") or (loss == "ce" and multilabel):
            raise ValueError(f"model.loss must be auto, ce (single-label corpora) or bce, got {loss!r} (multi-label: {multilabel})")
        self.loss_name = "bce" if multilabel or loss == "bce" else "ce"
        self.frontend = FbankFrontend(sample_rate=sample_rate, **features)
        self.augment = Augment(**augment)
        self.augment.check_fits(self.frontend.target_length, self.frontend.num_mel_bins)
        self.backbone = build_backbone(backbone, num_classes, self.frontend.num_mel_bins, self.frontend.target_length)
        if pretrained:
            load_pretrained(self.backbone, pretrained, fmt=pretrained_format, prefix=pretrained_prefix)
        self.configure_tome(tome or {})
        apply_finetune(self.backbone, **(finetune or {}))
        if compile:  # in place: parameters and state_dict keys unchanged (fast_ast/modules/compile.py)
            compile_backbone(self.backbone, compile_backend)
        self.val_metrics = build_metrics(num_classes, multilabel).clone(prefix="val/")
        self.test_metrics = build_metrics(num_classes, multilabel).clone(prefix="test/")

    def configure_tome(self, tome: dict[str, Any]) -> None:
        """(Re)sets Token Merging on the backbone: works on a model trained with or without it."""
        apply_tome(self.backbone, **tome)

    # ---- forward paths -------------------------------------------------------------------------
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, S] waveform -> [B, C] logits (no augmentation)."""
        return self.backbone(self.frontend(audio))

    def train_features(self, batch: dict) -> torch.Tensor:
        """A training batch -> [B, T, F] its augmented, normalised view (fast_ast.frontend.augment)."""
        return self.augment.view(self.frontend, batch)

    def target_matrix(self, target: torch.Tensor) -> torch.Tensor:
        """[B] class indices or [B, C] multi-hot -> [B, C] float targets."""
        if target.dim() == 1:
            return F.one_hot(target, self.num_classes).float()
        return target.float()

    def label_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """logits [B, C], float targets [B, C] (probabilities or multi-hot)."""
        if self.loss_name == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets)
        return F.cross_entropy(logits, targets)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.loss_name == "bce" else torch.softmax(logits, dim=-1)

    def metric_names(self, stage: str) -> list[str]:
        """Every metric name logged at `stage` (val | test): what data.monitor may name."""
        return [f"{stage}/loss", *(f"{stage}/{name}" for name in clip_metric_names(self.multilabel))]

    # ---- training ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None)
        if stage == "fit" and self.distillation is not None and datamodule is not None:
            self.distillation.check_dataset(datamodule.datasets["train"])

    def on_fit_start(self) -> None:
        if self.distillation is not None:
            self.distillation.to(self.device)

    def clip_loss(self, logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict]:
        """Clip logits [B, C] -> (loss, values to log): the label loss over the labelled clips, or the
        distillation loss when the classifier was given one."""
        targets = self.target_matrix(batch["target"])  # mixed in the dataset under mixup
        if self.distillation is not None:
            return self.distillation(logits, targets, batch, self.augment)
        per_clip = label_loss_per_clip(logits, targets, self.loss_name == "bce")
        labelled = batch.get("labelled")
        if labelled is None:
            loss = per_clip.mean()
        else:
            labelled = labelled.to(per_clip.device, per_clip.dtype)
            loss = (per_clip * labelled).sum() / labelled.sum().clamp(min=1)
        return loss, {"train/loss": loss}

    def training_loss(self, features: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict]:
        """Augmented features [B, T, F] -> (loss, values to log). The event model overrides this."""
        return self.clip_loss(self.backbone(features), batch)

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        loss, logs = self.training_loss(self.train_features(batch), batch)
        size = batch["audio"].shape[0]
        if "train/kd_missing" in logs:  # clips without a teacher row, summed over the epoch
            self.log("train/kd_missing", logs.pop("train/kd_missing"), on_step=False, on_epoch=True, reduce_fx="sum", batch_size=size)
        self.log_dict(logs, prog_bar=True, batch_size=size)
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The distillation settings go with the student's checkpoint as a record (never read back)."""
        if self.distillation is not None:
            checkpoint["distillation"] = {"kd": self.distillation.config, "teachers": self.distillation.teacher_names}

    def evaluation_step(self, batch: dict, metrics, stage: str) -> None:
        logits = self(batch["audio"])
        targets = batch["target"]
        loss = self.label_loss(logits, self.target_matrix(targets))
        metrics.update(self.scores(logits), targets.long() if self.multilabel else targets)
        self.log(f"{stage}/loss", loss, batch_size=logits.shape[0], sync_dist=True)

    def validation_step(self, batch: dict, batch_index: int) -> None:
        self.evaluation_step(batch, self.val_metrics, "val")

    def test_step(self, batch: dict, batch_index: int) -> None:
        self.evaluation_step(batch, self.test_metrics, "test")

    def log_metrics(self, metrics) -> None:
        self.log_dict(finalize(metrics.compute()), prog_bar=True, sync_dist=True)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self.log_metrics(self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self.log_metrics(self.test_metrics)

    def configure_optimizers(self):
        optim = self.hparams.optim
        parameters = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_optimizer(parameters, optim)
        scheduler = build_scheduler(optimizer, optim.get("schedule", {}), self.trainer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
