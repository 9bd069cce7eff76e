"""Rebuilding a trained model from a checkpoint alone (eval, predict, export, KD teachers).

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


def constructor_arguments(cls: type) -> set[str]:
    """Keyword arguments of `cls.__init__` and of every AudioClassifier it derives from."""
    return {name for klass in cls.__mro__ if issubclass(klass, AudioClassifier) for name in inspect.signature(klass.__init__).parameters}


def rebuild(checkpoint: dict[str, Any], cls: type = AudioClassifier, **overrides: Any) -> AudioClassifier:
    """A `cls` model from a checkpoint dict (read_checkpoint); hyperparameters `cls` does not take
    (e.g. a KD student's kd config) are dropped, and so are weights outside its own modules (a teacher)."""
    accepted = constructor_arguments(cls)
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k in accepted}
    hparams.update(pretrained=None)  # the checkpoint holds the trained weights
    hparams.update(overrides)
    model = cls(**hparams)
    own = {key.split(".")[0] for key in model.state_dict()}
    model.load_state_dict({k: v for k, v in checkpoint["state_dict"].items() if k.split(".")[0] in own}, strict=True)
    return model.eval()


def load_classifier(path: str | Path, **overrides: Any) -> AudioClassifier:
    """The classifier of checkpoint `path` (a KD student loads as its plain classifier).

    `overrides` replace constructor arguments, e.g. tome={"r": 16} for off-the-shelf token merging.
    """
    return rebuild(read_checkpoint(path), AudioClassifier, **overrides)
