"""KD losses against hand-computed values and numpy re-derivations (fast_ast/kd/losses.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fast_ast.kd.losses import distillation_loss, teacher_targets


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_bce(logits, targets):
    """Per clip: mean over classes of -(p log s + (1 - p) log(1 - s))."""
    s = np_sigmoid(logits)
    return -(targets * np.log(s) + (1 - targets) * np.log(1 - s)).mean(axis=-1)


def losses(student, labels, teacher_logits, lam, temperature, multilabel, present=None, labelled=None):
    present = torch.ones(len(student), dtype=torch.bool) if present is None else torch.tensor(present)
    labelled = torch.ones(len(student), dtype=torch.bool) if labelled is None else torch.tensor(labelled)
    probs = teacher_targets(torch.tensor(teacher_logits), temperature, multilabel)
    out = distillation_loss(torch.tensor(student), torch.tensor(labels), probs, present, labelled, lam, temperature, multilabel)
    return {key: float(value) for key, value in out.items()}


def test_multilabel_hand_computed_zero_student():
    # sigmoid(0) = 1/2: BCE against any target is ln 2, so every term is ln 2.
    student = np.zeros((2, 3), dtype=np.float32)
    labels = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.float32)
    teacher = np.array([[3.0, -1.0, 0.5], [-2.0, 4.0, 0.0]], dtype=np.float32)
    out = losses(student, labels, teacher, lam=0.3, temperature=2.0, multilabel=True)
    for key in ("loss", "label_loss", "kd_loss"):
        assert out[key] == pytest.approx(math.log(2), abs=1e-6)


def test_multilabel_efficientat_formulation():
    rng = np.random.default_rng(0)
    student = rng.normal(size=(4, 5)).astype(np.float32)
    labels = (rng.random((4, 5)) < 0.4).astype(np.float32)
    teacher = rng.normal(scale=3, size=(4, 5)).astype(np.float32)
    lam, temperature = 0.25, 2.0
    label = np_bce(student, labels)
    kd = np_bce(student, np_sigmoid(teacher / temperature))  # the student logits are not divided by T
    out = losses(student, labels, teacher, lam, temperature, multilabel=True)
    assert out["label_loss"] == pytest.approx(label.mean(), rel=1e-5)
    assert out["kd_loss"] == pytest.approx(kd.mean(), rel=1e-5)
    assert out["loss"] == pytest.approx((lam * label + (1 - lam) * kd).mean(), rel=1e-5)


def test_single_label_hand_computed():
    # Student [0, 0]: softmax (1/2, 1/2), CE to class 0 = ln 2. Teacher [0, 2 ln 3] / T=2 -> softmax (1/4, 3/4).
    # KL = 1/4 ln(1/2) + 3/4 ln(3/2); times T^2 = 4: 3 ln 1.5 - ln 2.
    student = np.zeros((1, 2), dtype=np.float32)
    labels = np.array([[1.0, 0.0]], dtype=np.float32)
    teacher = np.array([[0.0, 2 * math.log(3)]], dtype=np.float32)
    out = losses(student, labels, teacher, lam=0.25, temperature=2.0, multilabel=False)
    kd = 3 * math.log(1.5) - math.log(2)
    assert out["label_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert out["kd_loss"] == pytest.approx(kd, abs=1e-6)
    assert out["loss"] == pytest.approx(0.25 * math.log(2) + 0.75 * kd, abs=1e-6)


def test_single_label_kl_with_temperature_squared():
    rng = np.random.default_rng(1)
    student = rng.normal(size=(3, 4)).astype(np.float32)
    labels = np.eye(4, dtype=np.float32)[[0, 3, 1]]
    teacher = rng.normal(scale=2, size=(3, 4)).astype(np.float32)
    lam, temperature = 0.6, 3.0
    p = np_softmax(teacher / temperature)
    q = np_softmax(student / temperature)
    kd = temperature**2 * (p * np.log(p / q)).sum(axis=-1)
    label = -np.log(np_softmax(student)[np.arange(3), [0, 3, 1]])
    out = losses(student, labels, teacher, lam, temperature, multilabel=False)
    assert out["kd_loss"] == pytest.approx(kd.mean(), rel=1e-5)
    assert out["loss"] == pytest.approx((lam * label + (1 - lam) * kd).mean(), rel=1e-5)


def test_clips_without_teacher_use_the_label_loss_alone():
    rng = np.random.default_rng(2)
    student = rng.normal(size=(3, 4)).astype(np.float32)
    labels = (rng.random((3, 4)) < 0.5).astype(np.float32)
    teacher = rng.normal(size=(3, 4)).astype(np.float32)
    teacher[1] = np.nan  # a missing row must not leak into the loss
    lam = 0.2
    label = np_bce(student, labels)
    kd = np_bce(student, np_sigmoid(teacher))
    out = losses(student, labels, teacher, lam, 1.0, multilabel=True, present=[True, False, True])
    expected = np.array([lam * label[0] + (1 - lam) * kd[0], label[1], lam * label[2] + (1 - lam) * kd[2]])
    assert out["loss"] == pytest.approx(expected.mean(), rel=1e-5)
    assert out["kd_loss"] == pytest.approx((kd[0] + kd[2]) / 2, rel=1e-5)


def test_unlabelled_clips_use_the_distillation_term_alone():
    rng = np.random.default_rng(3)
    student = rng.normal(size=(4, 5)).astype(np.float32)
    labels = (rng.random((4, 5)) < 0.5).astype(np.float32)
    labels[1] = np.nan  # an unlabelled clip's target must not leak into the loss
    teacher = rng.normal(size=(4, 5)).astype(np.float32)
    teacher[3] = np.nan
    lam = 0.3
    label = np_bce(student, np.nan_to_num(labels))
    kd = np_bce(student, np_sigmoid(np.nan_to_num(teacher)))
    # clip 0: both; 1: unlabelled -> kd alone; 2: unlabelled and no teacher -> nothing; 3: no teacher -> label
    out = losses(np.nan_to_num(student), labels, teacher, lam, 1.0, multilabel=True,
                 present=[True, True, True, False], labelled=[True, False, False, True])
    out2 = losses(student, labels, teacher, lam, 1.0, multilabel=True,
                  present=[True, True, False, False], labelled=[True, False, False, True])
    expected = np.array([lam * label[0] + (1 - lam) * kd[0], kd[1], label[3]]).sum() / 3
    assert out2["loss"] == pytest.approx(expected, rel=1e-5)
    assert out2["label_loss"] == pytest.approx((label[0] + label[3]) / 2, rel=1e-5)
    assert out2["kd_loss"] == pytest.approx((kd[0] + kd[1]) / 2, rel=1e-5)
    assert math.isfinite(out["loss"])
