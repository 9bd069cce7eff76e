"""Every backbone family trains end to end, tiny, on the built-in corpus and in the event model on a
generated events corpus; the checkpoints rebuild from the file alone."""

from __future__ import annotations

import pytest
import torch

from fast_ast.backbones.registry import backbone_name
from fast_ast.modules.checkpoint import load_classifier
from fast_ast.modules.event_classifier import load_event_classifier
from tests.fixtures.backbones import one_thread, train_backbone, train_backbone_on_events
from tests.fixtures.corpora import make_events

NEW_FAMILIES = ("vit", "htsat", "mobilenet")


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    return make_events(tmp_path_factory.mktemp("events"))


@pytest.mark.parametrize("backbone", NEW_FAMILIES)
def test_trains_on_the_built_in_corpus(backbone, tmp_path):
    results = train_backbone(tmp_path, backbone)
    assert 0.0 <= results["metrics"]["val/acc"] <= 1.0 and 0.0 <= results["metrics"]["test/acc"] <= 1.0
    model = load_classifier(results["checkpoints"]["last"])
    assert backbone_name(model.backbone) == backbone
    assert results["tokens"]["per_layer"] == ([] if backbone != "vit" else [1 + 12 * 9])  # cls + 12 x 9 patches
    logits = model(torch.zeros(2, 16000))
    assert logits.shape == (2, len(model.class_names)) and torch.isfinite(logits).all()


@pytest.mark.parametrize("backbone", NEW_FAMILIES)
def test_trains_on_an_events_corpus(backbone, events, tmp_path):
    results = train_backbone_on_events(tmp_path / "run", backbone, events)
    metrics = results["metrics"]
    for key in ("val/frame_mAP", "val/frame_F1", "val/mAP", "test/frame_AP/background"):
        assert 0.0 <= metrics[key] <= 1.0, key
    model = load_event_classifier(results["checkpoints"]["last"])
    frames = {"vit": 9, "htsat": 16, "mobilenet": 4}[backbone]  # 100 frames: 9 patch columns, 2 x 8 HTS-AT tokens, ceil(100 / 32)
    assert model.frame_logits(torch.zeros(1, 16000)).shape == (1, frames, 3)
    assert model.class_names == ["bird", "car", "background"]
