"""Rebuilding a trained AudioClassifier from a checkpoint alone (eval, predict, export, KD teachers).

Checkpoints store the constructor's plain-container hyperparameters; they are read with
torch.load(weights_only=True): nothing is unpickled beyond tensors and containers.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch

from fast_ast.modules.classifier import AudioClassifier


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "hyper_parameters"):
        if key not in checkpoint:
            raise ValueError(f"{path} is not a fast_ast checkpoint: no '{key}'")
    return checkpoint


def load_classifier(path: str | Path, **overrides: Any) -> AudioClassifier:
    """The classifier of checkpoint `path` (a KD student loads as its plain classifier).

    `overrides` replace constructor arguments, e.g. tome={"r": 16} for off-the-shelf token merging.
    """
    checkpoint = read_checkpoint(path)
    accepted = inspect.signature(AudioClassifier.__init__).parameters
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k in accepted}
    hparams.update(pretrained=None)  # the checkpoint holds the trained weights
    hparams.update(overrides)
    model = AudioClassifier(**hparams)
    state = {k: v for k, v in checkpoint["state_dict"].items() if k.split(".")[0] in ("frontend", "backbone")}
    model.load_state_dict(state, strict=True)
    return model.eval()
