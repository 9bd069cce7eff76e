"""Clip-level evaluation metrics (torchmetrics) for single-label and multi-label corpora.

Inputs to update(): scores [B, C] (probabilities), targets [B] long (single-label) or [B, C] {0, 1} (multi-label).
Names (logged as val/<name> and test/<name>):
    single-label  acc (micro accuracy), balanced_acc (mean per-class recall, = macro recall),
                  precision, recall, f1 (averaged over classes weighted by their support, as sklearn's
                  average="weighted"; weighted recall equals acc), precision_macro, f1_macro (unweighted means)
    multi-label   precision, recall, f1 (support-weighted) and precision_macro, recall_macro, f1_macro,
                  each at score >= 0.5
    both          mAP (macro average precision), auc (macro ROC AUC), d_prime (from auc)
"""

from __future__ import annotations

import math

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassAveragePrecision,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MultilabelAUROC,
    MultilabelAveragePrecision,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
)


def d_prime(auc: torch.Tensor | float) -> torch.Tensor:
    """Sensitivity index from ROC AUC: sqrt(2) * Phi^-1(auc) (AudioSet's d')."""
    auc = torch.as_tensor(auc, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
    return math.sqrt(2.0) * torch.special.ndtri(auc)


def build_metrics(num_classes: int, multilabel: bool) -> MetricCollection:
    if multilabel:
        labels = {"num_labels": num_classes, "threshold": 0.5}
        return MetricCollection(
            {
                "mAP": MultilabelAveragePrecision(num_labels=num_classes, average="macro"),
                "auc": MultilabelAUROC(num_labels=num_classes, average="macro"),
                "precision": MultilabelPrecision(**labels, average="weighted", zero_division=0),
                "recall": MultilabelRecall(**labels, average="weighted", zero_division=0),
                "f1": MultilabelF1Score(**labels, average="weighted", zero_division=0),
                "precision_macro": MultilabelPrecision(**labels, average="macro", zero_division=0),
                "recall_macro": MultilabelRecall(**labels, average="macro", zero_division=0),
                "f1_macro": MultilabelF1Score(**labels, average="macro", zero_division=0),
            }
        )
    classes = {"num_classes": num_classes}
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(**classes, average="micro"),
            "balanced_acc": MulticlassAccuracy(**classes, average="macro"),
            "precision": MulticlassPrecision(**classes, average="weighted", zero_division=0),
            "recall": MulticlassRecall(**classes, average="weighted", zero_division=0),
            "f1": MulticlassF1Score(**classes, average="weighted", zero_division=0),
            "precision_macro": MulticlassPrecision(**classes, average="macro", zero_division=0),
            "f1_macro": MulticlassF1Score(**classes, average="macro", zero_division=0),
            "mAP": MulticlassAveragePrecision(**classes, average="macro"),
            "auc": MulticlassAUROC(**classes, average="macro"),
        }
    )


def finalize(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Adds d_prime next to every auc."""
    out = dict(values)
    for key, value in values.items():
        if key.endswith("auc"):
            out[key[: -len("auc")] + "d_prime"] = d_prime(value).to(value.dtype)
    return out


def clip_metric_names(multilabel: bool) -> list[str]:
    """The names finalize(build_metrics(...).compute()) returns (without the stage prefix)."""
    names = list(build_metrics(2, multilabel).keys())
    return names + [name[: -len("auc")] + "d_prime" for name in names if name.endswith("auc")]


def check_monitor(monitor: str, valid: list[str]) -> None:
    """Raises ValueError when `monitor` (data.monitor) is not among the metric names the model logs."""
    if monitor not in valid:
        raise ValueError(f"data.monitor={monitor!r} is not a metric this model logs; choose one of: {', '.join(valid)}")
