"""Clip-level evaluation metrics (torchmetrics) for single-label and multi-label corpora.

Inputs to update(): scores [B, C] (probabilities), targets [B] long (single-label) or [B, C] {0, 1} (multi-label).
Names: acc (micro accuracy, single-label), mAP (macro average precision), auc (macro ROC AUC), d_prime.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassAveragePrecision,
    MultilabelAUROC,
    MultilabelAveragePrecision,
)


def d_prime(auc: torch.Tensor | float) -> torch.Tensor:
    """Sensitivity index from ROC AUC: sqrt(2) * Phi^-1(auc) (AudioSet's d')."""
    auc = torch.as_tensor(auc, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
    return math.sqrt(2.0) * torch.special.ndtri(auc)


def build_metrics(num_classes: int, multilabel: bool) -> MetricCollection:
    if multilabel:
        return MetricCollection(
            {
                "mAP": MultilabelAveragePrecision(num_labels=num_classes, average="macro"),
                "auc": MultilabelAUROC(num_labels=num_classes, average="macro"),
            }
        )
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "mAP": MulticlassAveragePrecision(num_classes=num_classes, average="macro"),
            "auc": MulticlassAUROC(num_classes=num_classes, average="macro"),
        }
    )


def finalize(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Adds d_prime next to every auc."""
    out = dict(values)
    for key, value in values.items():
        if key.endswith("auc"):
            out[key[: -len("auc")] + "d_prime"] = d_prime(value).to(value.dtype)
    return out
