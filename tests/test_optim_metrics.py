"""Learning-rate schedules and metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from fast_ast.modules.metrics import build_metrics, d_prime, finalize
from fast_ast.modules.optim import build_optimizer, lr_factor


def test_multistep_schedule_is_the_ast_recipe():
    # AST ESC-50: no warmup here, decay 0.85 every epoch from epoch 5 (0-based) on.
    schedule = {"name": "multistep", "warmup_steps": 0, "start_epoch": 5, "step_epochs": 1, "decay": 0.85}
    factors = [lr_factor(schedule, step=0, epoch=e, total_steps=100) for e in range(8)]
    assert factors[:5] == [1.0] * 5
    assert factors[5:] == pytest.approx([0.85, 0.85**2, 0.85**3])


def test_multistep_every_two_epochs_and_warmup():
    schedule = {"name": "multistep", "warmup_steps": 4, "start_epoch": 2, "step_epochs": 2, "decay": 0.5}
    assert lr_factor(schedule, step=0, epoch=0, total_steps=100) == pytest.approx(0.25)
    assert lr_factor(schedule, step=3, epoch=0, total_steps=100) == pytest.approx(1.0)
    assert [lr_factor(schedule, 10, e, 100) for e in range(6)] == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_cosine_schedule_endpoints():
    schedule = {"name": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1}
    assert lr_factor(schedule, 4, 0, 110) == pytest.approx(0.5)
    assert lr_factor(schedule, 10, 0, 110) == pytest.approx(1.0)
    assert lr_factor(schedule, 60, 0, 110) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(schedule, 110, 0, 110) == pytest.approx(0.1)


def test_adam_uses_ast_betas_and_weight_decay():
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"name": "adam", "lr": 1e-4, "betas": [0.95, 0.999], "weight_decay": 5e-7})
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.Adam)
    assert group["betas"] == (0.95, 0.999) and group["weight_decay"] == 5e-7


def test_d_prime_hand_values():
    assert float(d_prime(0.5)) == pytest.approx(0.0, abs=1e-9)
    # Phi(1 / sqrt(2)) = 0.76025 -> d' = sqrt(2) * (1 / sqrt(2)) = 1
    auc = 0.5 * (1 + math.erf(0.5))
    assert float(d_prime(auc)) == pytest.approx(1.0, abs=1e-6)


def test_single_label_metrics_hand_case():
    metrics = build_metrics(num_classes=3, multilabel=False)
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5]])
    targets = torch.tensor([0, 1, 2, 2])
    values = finalize(metrics(scores, targets))
    assert float(values["acc"]) == pytest.approx(0.75)
    # class 2: scores by sample [0.1, 0.1, 0.4, 0.5], positives at the two highest -> AP 1; classes 0,1: AP 1
    assert float(values["mAP"]) == pytest.approx(1.0)
    assert "d_prime" in values


def test_multilabel_map_hand_case():
    metrics = build_metrics(num_classes=2, multilabel=True)
    scores = torch.tensor([[0.9, 0.2], [0.8, 0.7], [0.1, 0.6], [0.3, 0.1]])
    targets = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
    values = metrics(scores, targets)
    # class 0 ranking 0.9(+) 0.8(-) 0.3(-) 0.1(+): AP = (1/1 + 2/4) / 2 = 0.75; class 1: 0.7(+) 0.6(+) -> AP 1
    assert float(values["mAP"]) == pytest.approx((0.75 + 1.0) / 2)
