"""python -m fast_ast.export: the Hugging Face directory gives the project's outputs in transformers' own classes."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from fast_ast.data.synthetic import SyntheticClips
from fast_ast.export import export, feature_extractor_config
from fast_ast.modules.build import build_model
from fast_ast.modules.checkpoint import load_classifier
from tests.helpers import compose_config, compose_train

RATE = 16000


@pytest.fixture(scope="module")
def exported(trained_classifier, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "ast-synthetic"
    export(compose_config("export", [f"ckpt_path={trained_classifier.best}", f"out={out}"]))
    return out


def waveforms() -> list[np.ndarray]:
    """Clips of the built-in corpus, one with a DC offset, and one shorter than the model's input (padding)."""
    clips = SyntheticClips(3, 0, "test", RATE, RATE).audio.numpy()
    return [clips[0], clips[1] + 0.05, clips[2][: RATE * 3 // 4]]


def test_transformers_loads_the_export_with_the_same_logits(trained_classifier, exported):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import ASTFeatureExtractor, ASTForAudioClassification, pipeline

    ours = load_classifier(trained_classifier.best)
    config = json.loads((exported / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(ours.class_names)}
    assert config["label2id"] == {name: i for i, name in enumerate(ours.class_names)}

    theirs = ASTForAudioClassification.from_pretrained(exported).eval()
    extractor = ASTFeatureExtractor.from_pretrained(exported)
    assert (extractor.num_mel_bins, extractor.max_length, extractor.sampling_rate) == (32, 100, RATE)
    classify = pipeline("audio-classification", model=str(exported), top_k=None)
    for audio in waveforms():
        with torch.no_grad():
            expected = ours(torch.from_numpy(audio)[None])[0]
            logits = theirs(**extractor(audio, sampling_rate=RATE, return_tensors="pt")).logits[0]
        assert torch.allclose(logits, expected, atol=1e-4), (logits - expected).abs().max()
        scores = {entry["label"]: entry["score"] for entry in classify(audio)}
        probabilities = torch.softmax(expected, dim=-1)
        assert scores == {name: pytest.approx(float(p), abs=1e-4) for name, p in zip(ours.class_names, probabilities)}


def test_the_export_loads_back_as_pretrained_weights(trained_classifier, exported, tmp_path):
    cfg = compose_train(tmp_path, *trained_classifier.data_overrides, *trained_classifier.model_overrides, f"model.pretrained={exported}")
    model = build_model(cfg, instantiate(cfg.data)).eval()
    original = load_classifier(trained_classifier.best)
    reloaded = model.backbone.state_dict()
    assert reloaded.keys() == original.backbone.state_dict().keys()
    for key, value in original.backbone.state_dict().items():
        assert torch.equal(reloaded[key], value), key
    audio = torch.from_numpy(waveforms()[0])[None]
    with torch.no_grad():
        assert torch.equal(model(audio), original(audio))


def test_a_token_merging_checkpoint_exports_the_plain_ast_with_a_warning(trained_classifier, exported, tmp_path, caplog):
    checkpoint = torch.load(trained_classifier.best, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["tome"] = {"r": 8, "inflection": 0.0, "prop_attn": True, "trace_source": False}
    torch.save(checkpoint, tmp_path / "tome.ckpt")
    with caplog.at_level(logging.WARNING, logger="fast_ast.export"):
        export(compose_config("export", [f"ckpt_path={tmp_path / 'tome.ckpt'}", f"out={tmp_path / 'hf'}"]))
    assert "Token Merging" in caplog.text and "r = 0" in caplog.text
    assert (tmp_path / "hf" / "model.safetensors").read_bytes() == (exported / "model.safetensors").read_bytes()


def test_features_the_hugging_face_extractor_cannot_compute_are_refused():
    with pytest.raises(ValueError, match="frame_shift_ms=20.0"):
        feature_extractor_config({"num_mel_bins": 64, "target_length": 100, "norm_mean": 0.0, "norm_std": 1.0, "frame_shift_ms": 20.0}, RATE)
