"""Distillation across families through kd=teacher: an AST teacher into a CNN student, and CNN logits into an
AST student (tiny, one epoch on the built-in corpus); the students load back as their plain classifiers."""

from __future__ import annotations

import pytest
import torch

from fast_ast.backbones.registry import backbone_name
from fast_ast.modules.checkpoint import load_classifier
from tests.fixtures.backbones import one_thread, train_backbone


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    with one_thread():
        yield


@pytest.mark.parametrize(("teacher", "student"), [("ast", "mobilenet"), ("mobilenet", "ast")])
def test_cross_family_distillation(teacher, student, tmp_path):
    trained = train_backbone(tmp_path / "teacher", teacher, "test=false")
    results = train_backbone(tmp_path / "student", student, "kd=teacher", f"kd.ckpt_path={trained['checkpoints']['best']}", "test=false")
    assert results["kd"]["name"] == "teacher" and 0.0 <= results["metrics"]["val/acc"] <= 1.0
    distilled = load_classifier(results["checkpoints"]["last"])
    assert backbone_name(distilled.backbone) == student
    assert not any(key.startswith("teacher") for key in distilled.state_dict())
    assert distilled(torch.zeros(1, 16000)).shape == (1, len(distilled.class_names))
