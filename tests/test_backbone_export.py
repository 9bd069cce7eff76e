"""Export for every backbone: format=project writes model.safetensors + config.json that load_classifier
(and eval/predict via load_for_inference) rebuild with the same outputs; format=hf stays AST-only."""

from __future__ import annotations

import json

import pytest
import torch

from fast_ast.export import export
from fast_ast.inference.model import load_for_inference
from fast_ast.modules.checkpoint import load_classifier
from fast_ast.modules.classifier import AudioClassifier
from fast_ast.modules.event_classifier import EventClassifier
from tests.fixtures.backbones import one_thread
from tests.helpers import compose_config

SPECS = {
    "ast": {"name": "ast", "embed_dim": 32, "depth": 1, "num_heads": 2, "fstride": 10, "tstride": 10},
    "vit": {"name": "vit", "timm_name": "deit_tiny_patch16_224", "depth": 1, "pooling": "mean"},
    "htsat": {"name": "htsat", "spec_size": 128, "embed_dim": 16, "depths": [1, 1], "num_heads": [2, 2], "window_size": 4},
    "mobilenet": {"name": "mobilenet", "width_mult": 0.4},
}


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    with one_thread():
        yield


def model_arguments(backbone: dict, multilabel: bool = False) -> dict:
    return dict(
        backbone=backbone, num_classes=3, class_names=["a", "b", "c"], multilabel=multilabel, sample_rate=16000,
        clip_samples=16000, features={"num_mel_bins": 128, "target_length": 100}, augment={},
        optim={"name": "adam", "lr": 1e-3}, finetune={"strategy": "full"}, tome={"r": 0},
    )


def checkpoint_of(model: AudioClassifier, path) -> str:
    """A checkpoint as Lightning writes it (state_dict + hyper_parameters), after a perturbation of the weights."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "epoch": 0}, path)
    return str(path)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_project_export_rebuilds_every_backbone(name, tmp_path):
    torch.manual_seed(0)
    model = AudioClassifier(**model_arguments(SPECS[name])).eval()
    ckpt = checkpoint_of(model, tmp_path / "last.ckpt")
    out = export(compose_config("export", [f"ckpt_path={ckpt}", f"out={tmp_path / 'export'}", "format=project"]))
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "fast_ast" and config["model"] == "AudioClassifier" and config["backbone"] == name
    assert config["hyper_parameters"]["backbone"] == SPECS[name]
    audio = torch.randn(2, 16000) * 0.1
    for path in (out, out / "model.safetensors"):
        rebuilt = load_classifier(path)
        torch.testing.assert_close(rebuilt(audio), model(audio))
    if name != "ast":
        with pytest.raises(ValueError, match=rf"format=hf writes transformers' AST, and this checkpoint's backbone is '{name}'"):
            export(compose_config("export", [f"ckpt_path={ckpt}", f"out={tmp_path / 'hf'}", "format=hf"]))


def test_an_event_model_with_native_frame_logits_exports_as_an_event_model(tmp_path):
    torch.manual_seed(0)
    model = EventClassifier(**model_arguments(SPECS["htsat"], multilabel=True)).eval()
    assert not any(key.startswith("frame_head.") for key in model.state_dict())  # HTS-AT's frames are logits already
    ckpt = checkpoint_of(model, tmp_path / "events.ckpt")
    assert isinstance(load_for_inference(ckpt, None, torch.device("cpu")), EventClassifier)
    out = export(compose_config("export", [f"ckpt_path={ckpt}", f"out={tmp_path / 'export'}", "format=project"]))
    rebuilt = load_for_inference(out, None, torch.device("cpu"))
    audio = torch.randn(1, 16000) * 0.1
    assert isinstance(rebuilt, EventClassifier)
    torch.testing.assert_close(rebuilt.frame_logits(audio), model.frame_logits(audio))


def test_exports_are_validated_like_checkpoints(tmp_path):
    model = AudioClassifier(**model_arguments(SPECS["mobilenet"])).eval()
    out = export(compose_config("export", [f"ckpt_path={checkpoint_of(model, tmp_path / 'm.ckpt')}", f"out={tmp_path / 'e'}", "format=project"]))
    config = json.loads((out / "config.json").read_text())
    config["hyper_parameters"]["backbone"]["_target_"] = "os.system"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"refused: hyper_parameters.backbone._target_ is not allowed"):
        load_classifier(out)
    (out / "config.json").write_text(json.dumps({"model_type": "audio-spectrogram-transformer"}))
    with pytest.raises(ValueError, match=r"not a fast_ast export.*a Hugging Face export"):
        load_classifier(out)
