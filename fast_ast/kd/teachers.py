"""Teacher models: a frozen waveform -> logits network, its class list and where it came from.

Sources (`fmt`):
    project  a Lightning checkpoint of this project (rebuilt with fast_ast.modules.checkpoint.load_classifier)
    hf       a Hugging Face AST directory: config.json (architecture, id2label) + model.safetensors +
             preprocessor_config.json (sampling_rate, num_mel_bins, max_length, mean, std, do_normalize)
    auto     hf for a directory, project for a file

Shapes: waveform [B, S] at the teacher's sample rate -> logits [B, C].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fast_ast.backbones.ast import AST
from fast_ast.backbones.hf_keys import hf_head_eps
from fast_ast.backbones.weights import load_pretrained
from fast_ast.frontend.augment import Augment
from fast_ast.frontend.fbank import FbankFrontend
from fast_ast.modules.checkpoint import load_classifier
from fast_ast.model_files import read_json

FORMATS = ("auto", "project", "hf")
HF_CONFIG_KEYS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "layer_norm_eps",
    "patch_size", "frequency_stride", "time_stride", "num_mel_bins", "max_length", "id2label",
)
HF_PREPROCESSOR_KEYS = ("sampling_rate", "num_mel_bins", "max_length", "mean", "std")


@dataclass
class Teacher:
    """model: [B, S] waveform -> [B, C] logits, frozen and in eval mode, with `frontend` and `backbone`."""

    model: nn.Module
    class_names: list[str]
    sample_rate: int
    identity: dict[str, str]

    @torch.no_grad()
    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)

    @torch.no_grad()
    def view_logits(self, batch: dict, augment: Augment) -> torch.Tensor:
        """[B, C] logits of the batch's augmented training view (fast_ast.frontend.augment.Augment.view):
        the same audio, mixup partner and per-clip seeds as the student, through the teacher's own
        frontend, so the features are the student's, bit for bit, when the frontend settings are equal."""
        return self.model.backbone(augment.view(self.model.frontend, batch))

    def to(self, device: torch.device | str) -> "Teacher":
        self.model.to(device)
        return self


class WaveformClassifier(nn.Module):
    """frontend [B, S] -> [B, T, F], then backbone -> [B, C] (the shape of AudioClassifier.forward)."""

    def __init__(self, frontend: FbankFrontend, backbone: AST):
        super().__init__()
        self.frontend, self.backbone = frontend, backbone

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.frontend(audio))


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


def read_json_file(path: Path, required: tuple[str, ...]) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: a Hugging Face AST teacher needs {path.name} (not found)")
    content = read_json(path)
    absent = [key for key in required if key not in content]
    if absent:
        raise ValueError(f"{path}: missing {', '.join(absent)}")
    return content


def teacher_from_checkpoint(path: Path) -> Teacher:
    classifier = load_classifier(path)
    hparams = classifier.hparams
    identity = {
        "teacher": f"project checkpoint {path.resolve()}",
        "teacher_format": "project",
        "teacher_backbone": json.dumps(dict(hparams["backbone"]), sort_keys=True),
        "teacher_tome": json.dumps(dict(hparams.get("tome") or {}), sort_keys=True),
    }
    return Teacher(freeze(classifier), list(classifier.class_names), int(hparams["sample_rate"]), identity)


def teacher_from_hf(directory: Path) -> Teacher:
    """An AST sized from config.json, weights from load_pretrained(fmt="hf"), features from preprocessor_config.json."""
    config = read_json_file(directory / "config.json", HF_CONFIG_KEYS)
    features = read_json_file(directory / "preprocessor_config.json", HF_PREPROCESSOR_KEYS)
    for key in ("num_mel_bins", "max_length"):
        if features[key] != config[key]:
            raise ValueError(f"{directory}: {key} is {config[key]} in config.json but {features[key]} in preprocessor_config.json")
    class_names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    backbone = AST(
        num_classes=len(class_names),
        input_fdim=config["num_mel_bins"],
        input_tdim=config["max_length"],
        patch_size=config["patch_size"],
        fstride=config["frequency_stride"],
        tstride=config["time_stride"],
        embed_dim=config["hidden_size"],
        depth=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        mlp_ratio=config["intermediate_size"] / config["hidden_size"],
        norm_eps=config["layer_norm_eps"],
        head_norm_eps=hf_head_eps(config),
    )
    load_pretrained(backbone, str(directory), fmt="hf")
    normalize = features.get("do_normalize", True)
    frontend = FbankFrontend(
        sample_rate=features["sampling_rate"],
        num_mel_bins=features["num_mel_bins"],
        target_length=features["max_length"],
        norm_mean=features["mean"] if normalize else 0.0,
        norm_std=features["std"] if normalize else 0.5,  # (x - 0) / (2 * 0.5) = x
    )
    identity = {
        "teacher": f"hf directory {directory.resolve()}",
        "teacher_format": "hf",
        "teacher_backbone": json.dumps({k: config[k] for k in HF_CONFIG_KEYS if k != "id2label"}, sort_keys=True),
    }
    return Teacher(freeze(WaveformClassifier(frontend, backbone)), class_names, int(features["sampling_rate"]), identity)


def load_teacher(path: str | Path, fmt: str = "auto") -> Teacher:
    """The frozen teacher at `path` (see the module docstring for the formats)."""
    if fmt not in FORMATS:
        raise ValueError(f"teacher format must be one of {FORMATS}, got {fmt!r}")
    source = Path(path).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"teacher {source} does not exist")
    if fmt == "auto":
        fmt = "hf" if source.is_dir() else "project"
    if fmt == "hf":
        return teacher_from_hf(source if source.is_dir() else source.parent)
    return teacher_from_checkpoint(source)
