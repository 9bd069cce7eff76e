"""Labelled, windowed evaluation of a clip classifier on long annotated recordings (eval with data=events).

Each recording of the split is cut into windows of the model's input length every `hop_seconds` and scored
as predict does (fast_ast.predict.predict_waveform). A window is one *segment*; its target is the clip-level
target of data=events with a single bin (fast_ast.data.event_targets.frame_targets, bins=1): class c is
present when an event of c covers at least half of the window, or half of the event if it is shorter.
A *recording*'s score for a class is the max (or mean, `aggregate`) over its windows; its target is 1 when
it has any event of the class.

The annotation classes (data.classes or the training labels; never data.background_class) are matched to
the checkpoint's classes by name; the metrics are computed over them, per level (segment, recording):
    mAP       mean over classes with a positive of average precision (torchmetrics' binary AP)
    auc       mean over classes with positives and negatives of ROC AUC; d_prime from it
    f1        mean over classes with a positive of F1 at score >= threshold
    AP/<c>    average precision of each class with a positive
    acc       single-label checkpoints only: top-1 over all the checkpoint's classes equals the label,
              over the items with exactly one label
A class without positives is left out of the averages (torchmetrics' macro AP would count it as 0); a metric
that no item or class defines is left out with a warning.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torchmetrics.functional.classification import binary_auroc, binary_average_precision

from fast_ast.data.clip_dataset import Clip
from fast_ast.data.event_targets import Event, frame_targets
from fast_ast.data.events import EventsDataModule
from fast_ast.modules.classifier import AudioClassifier
from fast_ast.modules.metrics import d_prime
from fast_ast.predict import Settings, predict_waveform

log = logging.getLogger(__name__)

AGGREGATES = ("max", "mean")
LEVELS = ("segment", "recording")


@dataclass(frozen=True)
class WindowSettings:
    hop_seconds: float | None  # None: one window (segments tile each recording)
    aggregate: str  # max | mean
    threshold: float  # F1 counts scores >= threshold


@dataclass
class RecordingEvaluation:
    metrics: dict[str, float]  # "<split>/<level>/<name>"
    rows: list[list]  # predictions.csv rows: id, file, start_s, end_s, labels, one score per checkpoint class
    header: list[str]
    recordings: int
    windows: int
    window_s: float
    hop_s: float
    classes: list[str]  # the annotation classes evaluated


def match_classes(event_classes: Sequence[str], model_classes: Sequence[str]) -> list[int]:
    """The checkpoint's column of each annotation class (matched by name)."""
    column = {name: index for index, name in enumerate(model_classes)}
    unmatched = [name for name in event_classes if name not in column]
    if unmatched:
        raise ValueError(
            f"the annotation labels {unmatched} are not classes of the checkpoint {list(model_classes)}: "
            "rename them in the annotation CSVs (or list only the checkpoint's classes in data.classes)"
        )
    return [column[name] for name in event_classes]


def window_targets(events: Sequence[Event], starts_s: torch.Tensor, window_s: float, num_classes: int) -> torch.Tensor:
    """starts_s [N] -> [N, num_classes] {0, 1}: each window's clip-level target (frame_targets, bins=1)."""
    return torch.stack([frame_targets(events, float(start), window_s, 1, num_classes)[:, 0] for start in starts_s.tolist()])


def recording_targets(events: Sequence[Event], num_classes: int) -> torch.Tensor:
    """[num_classes] {0, 1}: the classes with any event in the recording."""
    target = torch.zeros(num_classes)
    for _, _, label in events:
        target[label] = 1.0
    return target


def aggregate_windows(scores: torch.Tensor, how: str) -> torch.Tensor:
    """[N, C] window scores -> [C] recording scores (max or mean over the windows)."""
    if how == "max":
        return scores.amax(dim=0)
    if how == "mean":
        return scores.mean(dim=0)
    raise ValueError(f"recordings.aggregate={how!r}: choose one of {AGGREGATES}")


def mean_or_nan(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def class_metrics(scores: torch.Tensor, targets: torch.Tensor, threshold: float, names: Sequence[str]) -> dict[str, float]:
    """scores [N, K], targets [N, K] {0, 1} -> mAP, auc, d_prime, f1 and AP/<class> (see the module docstring)."""
    scores, targets = scores.double(), targets.double()
    positives = targets.sum(dim=0)
    detected = scores >= threshold
    ap, auc, f1 = {}, [], []
    for k, name in enumerate(names):
        if positives[k] == 0:
            continue
        truth = targets[:, k].long()
        ap[name] = float(binary_average_precision(scores[:, k], truth))
        if positives[k] < len(truth):
            auc.append(float(binary_auroc(scores[:, k], truth)))
        tp = float((detected[:, k] & (truth == 1)).sum())
        fp = float((detected[:, k] & (truth == 0)).sum())
        fn = float(positives[k]) - tp
        f1.append(2 * tp / (2 * tp + fp + fn))
    metrics = {"mAP": mean_or_nan(list(ap.values())), "auc": mean_or_nan(auc), "f1": mean_or_nan(f1)}
    metrics["d_prime"] = float(d_prime(metrics["auc"])) if auc else math.nan
    metrics.update({f"AP/{name}": value for name, value in ap.items()})
    return metrics


def top1_accuracy(scores: torch.Tensor, targets: torch.Tensor, columns: Sequence[int]) -> float:
    """scores [N, C] over the checkpoint's classes, targets [N, K] over the annotation classes (class k is
    column columns[k]): the fraction of the items with exactly one label whose top-1 class is it (nan: none)."""
    single = targets.sum(dim=1) == 1
    if not bool(single.any()):
        return math.nan
    label_column = torch.tensor(list(columns))[targets[single].argmax(dim=1)]
    return float((scores[single].argmax(dim=1) == label_column).double().mean())


def level_metrics(
    scores: torch.Tensor, targets: torch.Tensor, columns: Sequence[int], names: Sequence[str], threshold: float, single_label: bool
) -> dict[str, float]:
    """All metrics of one level: scores [N, C] (checkpoint classes), targets [N, K] (annotation classes)."""
    metrics = class_metrics(scores[:, list(columns)], targets, threshold, names)
    if single_label:
        metrics["acc"] = top1_accuracy(scores, targets, columns)
    return metrics


def window_settings(model: AudioClassifier, settings: WindowSettings, batch_size: int, precision: str) -> Settings:
    """predict's window settings for `model` (window = its clip length; hop = hop_seconds or the window)."""
    rate, window = int(model.hparams.sample_rate), int(model.hparams.clip_samples)
    hop = window if settings.hop_seconds is None else int(round(settings.hop_seconds * rate))
    if not 0 < hop <= window:
        raise ValueError(f"recordings.hop_seconds={settings.hop_seconds} must be > 0 and at most the model's window of {window / rate} s")
    if not 0 < settings.threshold < 1:
        raise ValueError(f"recordings.threshold must be in (0, 1), got {settings.threshold}")
    if settings.aggregate not in AGGREGATES:
        raise ValueError(f"recordings.aggregate={settings.aggregate!r}: choose one of {AGGREGATES}")
    return Settings(window, hop, rate, batch_size, 1, settings.threshold, precision)


def evaluate_recordings(
    model: AudioClassifier, datamodule: EventsDataModule, split: str, settings: WindowSettings, precision: str
) -> RecordingEvaluation:
    """Scores every window of `split`'s recordings (forward passes under `precision`, a fast_ast.precision
    name) and computes the segment and recording metrics."""
    if datamodule.sample_rate != model.hparams.sample_rate:
        raise ValueError(f"data.sample_rate={datamodule.sample_rate} but the checkpoint was trained at {model.hparams.sample_rate} Hz")
    names = datamodule.event_classes
    columns = match_classes(names, model.class_names)
    windows = window_settings(model, settings, datamodule.eval_batch_size, precision)
    window_s = windows.window / windows.sample_rate
    recordings: list[Clip] = datamodule.split_recordings(split)
    segment_scores, segment_targets, record_scores, record_targets, rows = [], [], [], [], []
    for recording in recordings:
        waveform = datamodule.store.load(datamodule.infos[recording.path])
        prediction = predict_waveform(model, waveform, windows)
        starts_s = prediction.starts.double() / windows.sample_rate
        targets = window_targets(recording.target, starts_s, window_s, len(names))
        segment_scores.append(prediction.scores)
        segment_targets.append(targets)
        record_scores.append(aggregate_windows(prediction.scores, settings.aggregate))
        record_targets.append(recording_targets(recording.target, len(names)))
        for start, target, row in zip(starts_s.tolist(), targets, prediction.scores.tolist(), strict=True):
            labels = ";".join(name for name, on in zip(names, target.tolist(), strict=True) if on > 0.5)
            end = min(start + window_s, prediction.duration_s)
            rows.append([f"{recording.id}@{start:.3f}", recording.path, f"{start:.3f}", f"{end:.3f}", labels, *(f"{v:.6g}" for v in row)])

    levels = {
        "segment": (torch.cat(segment_scores), torch.cat(segment_targets)),
        "recording": (torch.stack(record_scores), torch.stack(record_targets)),
    }
    metrics, undefined = {}, []
    for level, (scores, targets) in levels.items():
        for name, value in level_metrics(scores, targets, columns, names, settings.threshold, not model.multilabel).items():
            key = f"{split}/{level}/{name}"
            if math.isnan(value):
                undefined.append(key)
            else:
                metrics[key] = value
    if undefined:
        log.warning("left out, undefined on this split (no class with positives and negatives, or no item with one label): %s", ", ".join(undefined))
    return RecordingEvaluation(
        metrics,
        rows,
        ["id", "file", "start_s", "end_s", "labels", *model.class_names],
        len(recordings),
        len(rows),
        window_s,
        windows.hop / windows.sample_rate,
        list(names),
    )


def write_window_predictions(path: Path, evaluation: RecordingEvaluation) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(evaluation.header)
        writer.writerows(evaluation.rows)
