"""EventClassifier: an AudioClassifier with a frame-level head, so event timing is learnt (data=events).

waveform [B, S] -> features [B, T, F] -> backbone.forward_frames (fast_ast.backbones.base), then
    clip logits   [B, C]         the backbone's own clip head
    frame logits  [B, T', C]     frame_head(frames): LayerNorm + Linear on the backbone's frame embeddings
                                 (AST: patch tokens averaged over frequency, one per time column, unmerged
                                 first with ToMe's source tracking), or the frames themselves when the
                                 backbone emits per-class frame logits natively (HTS-AT)
Time resolution of frame_logits: frame j is centred at backbone.frame_offset + j * backbone.frame_hop fbank
frames, i.e. at frame_offset_s + j * frame_hop_s seconds into the clip (fbank frame k is centred at
k * shift + window / 2); for the AST with tstride 10 and 16x16 patches: 0.1 s hop, 0.0875 s offset.
Training: BCE on clip logits + frame_loss_weight * BCE on the frame logits linearly interpolated at the
centres of the data's `event_bins` target bins (they tile the clip evenly; targets [B, C, bins]).
Metrics (val/ and test/): the clip-level ones of AudioClassifier, and on target bins per class
frame_AP/<class> and frame_F1/<class> (probability >= frame_threshold), with their macro averages
frame_mAP (over classes with a positive bin) and frame_F1. A background class (data.background_class, active
where no event is) is left out of frame_mAP and frame_F1 unless include_background (its per-class values
are still logged).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelF1Score

from fast_ast.modules.checkpoint import read_checkpoint, rebuild
from fast_ast.modules.classifier import AudioClassifier
from fast_ast.tome import apply_tome


def interpolate_frames(values: torch.Tensor, source_times: torch.Tensor, target_times: torch.Tensor) -> torch.Tensor:
    """[B, T, C] at increasing `source_times` [T] -> [B, K, C] at `target_times` [K]: linear, held constant outside."""
    if values.shape[1] == 1:
        return values.expand(-1, target_times.shape[0], -1)
    right = torch.searchsorted(source_times, target_times).clamp(1, source_times.shape[0] - 1)
    left = right - 1
    weight = ((target_times - source_times[left]) / (source_times[right] - source_times[left])).clamp(0, 1)
    weight = weight.to(values.dtype).view(1, -1, 1)
    return values[:, left] * (1 - weight) + values[:, right] * weight


class PositiveCount(Metric):
    """Positive targets per class: update(preds [N, C], target [N, C]) -> compute() [C]."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.add_state("count", torch.zeros(num_classes), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.count += target.sum(dim=0).to(self.count.dtype)

    def compute(self) -> torch.Tensor:
        return self.count


def build_frame_metrics(num_classes: int, threshold: float) -> MetricCollection:
    return MetricCollection(
        {
            "AP": MultilabelAveragePrecision(num_labels=num_classes, average=None),
            "F1": MultilabelF1Score(num_labels=num_classes, average=None, threshold=threshold),
            "positives": PositiveCount(num_classes),
        },
        compute_groups=False,
    )


def frame_metric_values(
    values: dict[str, torch.Tensor], class_names: list[str], stage: str, excluded: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """Per-class frame AP/F1 and their macro averages over the classes not in `excluded` (mAP: over those
    with at least one positive bin)."""
    ap, f1, positives = values["AP"], values["F1"], values["positives"]
    out = {f"{stage}/frame_AP/{name}": ap[i] for i, name in enumerate(class_names)}
    out.update({f"{stage}/frame_F1/{name}": f1[i] for i, name in enumerate(class_names)})
    counted = torch.tensor([name not in excluded for name in class_names], device=ap.device)
    present = (positives > 0) & counted
    out[f"{stage}/frame_mAP"] = ap[present].mean() if present.any() else torch.tensor(float("nan"))
    out[f"{stage}/frame_F1"] = f1[counted].mean()
    return out


def frame_metric_names(class_names: list[str], stage: str) -> list[str]:
    """The names frame_metric_values logs, plus the frame loss."""
    per_class = [f"{stage}/frame_{kind}/{name}" for kind in ("AP", "F1") for name in class_names]
    return [f"{stage}/frame_loss", f"{stage}/frame_mAP", f"{stage}/frame_F1", *per_class]


class EventClassifier(AudioClassifier):
    """AudioClassifier arguments, plus frame_loss_weight, frame_threshold, background_class and
    include_background (conf/model/ast_events.yaml)."""

    def __init__(
        self,
        *args,
        frame_loss_weight: float = 1.0,
        frame_threshold: float = 0.5,
        background_class: str | None = None,
        include_background: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if background_class is not None and background_class not in self.class_names:
            raise ValueError(f"model.background_class={background_class!r} is not one of the classes {self.class_names}")
        self.background_class = background_class
        self.excluded_classes = (background_class,) if background_class is not None and not include_background else ()
        if not self.multilabel:
            raise ValueError("model=ast_events needs multi-label frame targets: use data=events")
        if self.augment.time_shift:
            raise ValueError("augment.time_shift rolls the features but not the frame targets: set it to 0 for model=ast_events")
        if frame_loss_weight < 0 or not 0 < frame_threshold < 1:
            raise ValueError(f"model.frame_loss_weight must be >= 0 and model.frame_threshold in (0, 1), got {frame_loss_weight}, {frame_threshold}")
        self.frame_loss_weight = frame_loss_weight
        width = self.backbone.frame_dim
        if self.backbone.frames_are_logits:
            self.frame_head = nn.Identity()
        else:
            self.frame_head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, self.num_classes))
        self.frame_metrics = nn.ModuleDict({stage: build_frame_metrics(self.num_classes, frame_threshold) for stage in ("val", "test")})

    def metric_names(self, stage: str) -> list[str]:
        return [*super().metric_names(stage), *frame_metric_names(self.class_names, stage)]

    def configure_tome(self, tome: dict[str, Any]) -> None:
        """Token reduction for frame outputs: source tracking on for ToMe and pruning (the backbone unmerges
        the final tokens into frames); temporal merging keeps time order and needs none. Time patchout
        would drop frames the targets have, so it is refused."""
        if tome.get("time_patchout"):
            raise ValueError(f"tome.time_patchout={tome['time_patchout']} drops time columns the frame targets need: set it to 0 for event models")
        temporal = tome.get("method") == "temporal"
        apply_tome(self.backbone, **{**tome, "trace_source": bool(tome.get("trace_source")) or not temporal})

    # ---- frame outputs -------------------------------------------------------------------------
    @property
    def frame_hop_samples(self) -> int:
        """Audio samples between consecutive frame_logits frames."""
        return round(self.backbone.frame_hop * self.frontend.window_shift)

    @property
    def frame_hop_s(self) -> float:
        """Seconds between consecutive frame_logits frames."""
        return self.backbone.frame_hop * self.frontend.window_shift / self.frontend.sample_rate

    @property
    def frame_offset_s(self) -> float:
        """Centre time (s) of frame 0 of frame_logits."""
        centre = self.backbone.frame_offset * self.frontend.window_shift + self.frontend.window_size / 2
        return centre / self.frontend.sample_rate

    def frame_times(self, frames: int) -> torch.Tensor:
        """[frames] centre times (s) of frame_logits' frames, float64."""
        return self.frame_offset_s + self.frame_hop_s * torch.arange(frames, dtype=torch.float64)

    def outputs(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, T, F] -> (clip logits [B, C], frame logits [B, T', C])."""
        clip_logits, frames = self.backbone.forward_frames(features)
        return clip_logits, self.frame_head(frames)

    def frame_logits(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, S] waveform -> [B, T', C] frame logits (no augmentation); times in frame_times(T')."""
        return self.outputs(self.frontend(audio))[1]

    def bin_logits(self, frame_logits: torch.Tensor, bins: int) -> torch.Tensor:
        """[B, t_dim, C] -> [B, bins, C] at the centres of `bins` equal bins tiling the clip."""
        clip_seconds = self.hparams.clip_samples / self.hparams.sample_rate
        centres = (torch.arange(bins, dtype=torch.float64) + 0.5) * clip_seconds / bins
        times = self.frame_times(frame_logits.shape[1])
        return interpolate_frames(frame_logits, times.to(frame_logits.device), centres.to(frame_logits.device))

    def frame_loss(self, frame_logits: torch.Tensor, frame_target: torch.Tensor) -> torch.Tensor:
        """frame_target [B, C, bins] (mixed in the dataset under mixup) -> BCE of the interpolated frame logits."""
        targets = frame_target.transpose(1, 2).float()
        return F.binary_cross_entropy_with_logits(self.bin_logits(frame_logits, targets.shape[1]), targets)

    # ---- training and evaluation -----------------------------------------------------------------
    def training_loss(self, features: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict]:
        """The clip loss (labels or distillation, AudioClassifier.clip_loss) + frame_loss_weight * frame BCE."""
        clip_logits, frame_logits = self.outputs(features)
        clip_loss, logs = self.clip_loss(clip_logits, batch)
        frame_loss = self.frame_loss(frame_logits, batch["frame_target"])
        loss = clip_loss + self.frame_loss_weight * frame_loss
        logs.update({"train/clip_loss": clip_loss, "train/frame_loss": frame_loss, "train/loss": loss})
        return loss, logs

    def evaluation_step(self, batch: dict, metrics, stage: str) -> None:
        clip_logits, frame_logits = self.outputs(self.frontend(batch["audio"]))
        targets = batch["target"]
        metrics.update(self.scores(clip_logits), targets.long())
        frame_target = batch["frame_target"].transpose(1, 2)  # [B, bins, C]
        bins = self.bin_logits(frame_logits, frame_target.shape[1])
        self.frame_metrics[stage].update(torch.sigmoid(bins).flatten(0, 1), frame_target.flatten(0, 1).long())
        batch_size = clip_logits.shape[0]
        self.log(f"{stage}/loss", self.label_loss(clip_logits, targets.float()), batch_size=batch_size, sync_dist=True)
        self.log(f"{stage}/frame_loss", F.binary_cross_entropy_with_logits(bins, frame_target.float()), batch_size=batch_size, sync_dist=True)

    def log_frame_metrics(self, stage: str) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No positive samples found")  # classes absent from the split
            values = self.frame_metrics[stage].compute()
        self.log_dict(frame_metric_values(values, self.class_names, stage, self.excluded_classes), sync_dist=True)
        self.frame_metrics[stage].reset()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.log_frame_metrics("val")

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.log_frame_metrics("test")


def load_event_classifier(path: str | Path, **overrides: Any) -> EventClassifier:
    """The EventClassifier of checkpoint `path` (weights_only load), e.g. for fast_ast.predict."""
    return rebuild(read_checkpoint(path), EventClassifier, **overrides)
