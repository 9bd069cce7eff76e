"""Issue 17, metrics: balanced accuracy and weighted/macro precision, recall, F1 against hand-computed values;
data.monitor checked before training; the background class out of frame_mAP / frame_F1."""

from __future__ import annotations

import pytest
import torch

from fast_ast.modules.event_classifier import frame_metric_values
from fast_ast.modules.metrics import build_metrics, finalize
from tests.helpers import compose_train


def test_single_label_metrics_hand_case():
    # targets 0 0 0 1 2 2, predictions (argmax) 0 0 1 1 2 0
    scores = torch.tensor([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.5, 0.2, 0.3]])
    targets = torch.tensor([0, 0, 0, 1, 2, 2])
    values = finalize(build_metrics(3, multilabel=False)(scores, targets))
    # per class: precision 2/3, 1/2, 1/1; recall 2/3, 1/1, 1/2; F1 2/3, 2/3, 2/3; support 3, 1, 2
    precision, recall, support = [2 / 3, 1 / 2, 1.0], [2 / 3, 1.0, 1 / 2], [3, 1, 2]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    weighted = lambda per_class: sum(v * n for v, n in zip(per_class, support)) / 6
    assert float(values["acc"]) == pytest.approx(4 / 6)
    assert float(values["balanced_acc"]) == pytest.approx(sum(recall) / 3)
    assert float(values["precision"]) == pytest.approx(weighted(precision))
    assert float(values["recall"]) == pytest.approx(weighted(recall))  # = accuracy
    assert float(values["f1"]) == pytest.approx(weighted(f1))
    assert float(values["precision_macro"]) == pytest.approx(sum(precision) / 3)
    assert float(values["f1_macro"]) == pytest.approx(sum(f1) / 3)


def test_model_logs_the_new_names_and_monitor_is_checked_before_training(tmp_path):
    from fast_ast.train import train

    cfg = compose_train(tmp_path, "data.monitor=val/balanced_accuracy")
    with pytest.raises(ValueError, match=r"data.monitor='val/balanced_accuracy'.*val/balanced_acc.*val/f1_macro"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def test_monitor_names_include_event_metrics():
    from fast_ast.modules.metrics import clip_metric_names

    assert {"acc", "balanced_acc", "precision", "recall", "f1", "precision_macro", "f1_macro"} <= set(clip_metric_names(False))
    assert {"f1", "recall_macro"} <= set(clip_metric_names(True))


def test_background_class_is_left_out_of_frame_averages():
    names = ["bird", "frog", "background"]
    values = {"AP": torch.tensor([0.8, 0.6, 1.0]), "F1": torch.tensor([0.5, 0.7, 0.9]), "positives": torch.tensor([3.0, 2.0, 10.0])}
    out = frame_metric_values(values, names, "val", excluded=("background",))
    assert float(out["val/frame_mAP"]) == pytest.approx(0.7)  # (0.8 + 0.6) / 2, not (0.8 + 0.6 + 1.0) / 3
    assert float(out["val/frame_F1"]) == pytest.approx(0.6)
    assert float(out["val/frame_AP/background"]) == pytest.approx(1.0)  # still logged per class
    everything = frame_metric_values(values, names, "val")
    assert float(everything["val/frame_mAP"]) == pytest.approx(0.8)


def test_report_lists_the_classification_metrics():
    from types import SimpleNamespace

    from fast_ast.report import classification_section

    def job(num, status, metrics):
        return SimpleNamespace(num=num, status=status, metric=lambda name: metrics.get(name))

    jobs = [
        job(0, "completed", {"test/acc": 0.5, "test/balanced_acc": 0.25, "test/f1": 0.4, "val/acc": 0.9}),
        job(1, "completed", {"test/acc": 0.75, "test/balanced_acc": 0.5}),
        job(2, "failed", {}),
    ]
    lines = classification_section(jobs)
    assert "## Classification metrics (test/, final evaluation)" in lines
    assert "| job | acc | balanced_acc | f1 |" in lines
    assert "| 0 | 0.5000 | 0.2500 | 0.4000 |" in lines and "| 1 | 0.7500 | 0.5000 | — |" in lines
    assert not any(line.startswith("| 2 ") for line in lines)
