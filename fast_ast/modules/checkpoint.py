"""Rebuilding a trained model from a checkpoint alone (eval, predict, export, visualize, KD teachers).

What a checkpoint may contain, and what is refused before anything is built:
- it is read with torch.load(weights_only=True): tensors and plain containers only, no pickled objects;
- `hyper_parameters` are the model's constructor arguments as plain values (None, bool, int, float, str,
  lists, mappings with string keys); a key no model takes, or a `_target_` anywhere, is refused by name;
- the backbone is {"name": <registered name>, <size key>: <scalar or list>} and is built by name from the
  fixed registry (fast_ast.backbones.registry), its keys and types checked: nothing read from a file is
  ever instantiated or imported.

A checkpoint is a Lightning `.ckpt`, or a project export (fast_ast.export format=project, any backbone): a
directory with `model.safetensors` (the model's state dict) and `config.json` ({"format": "fast_ast",
"model": "AudioClassifier" | "EventClassifier", "hyper_parameters": {...}}), or that `model.safetensors`
itself; its hyper_parameters go through the same validation.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fast_ast.backbones.registry import validate_spec
from fast_ast.modules.classifier import AudioClassifier
from fast_ast.model_files import read_json, read_safetensors

# The dotted path checkpoints of the first releases stored for the AST; read as a name, never imported.
LEGACY_AST_TARGET = "fast_ast.backbones.ast.AST"
# hyper_parameters of earlier KD students (KDStudent's kd config): accepted and dropped on rebuild.
LEGACY_KEYS = {"kd"}
# Constructor arguments that are objects given at build time, never saved nor read from a file.
NOT_SAVED = {"distillation"}
PLAIN = (type(None), bool, int, float, str)
EXPORT_FORMAT = "fast_ast"  # config.json "format" of a project export
EXPORT_CONFIG, EXPORT_WEIGHTS = "config.json", "model.safetensors"
EXPORT_MODELS = ("AudioClassifier", "EventClassifier")


def check_plain(value: Any, where: str) -> None:
    """Raises ValueError naming `where` unless value is plain data with no `_target_` key."""
    if isinstance(value, PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_plain(item, f"{where}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has a non-string key {key!r}")
            if key == "_target_":
                raise ValueError(f"{where}._target_ is not allowed: checkpoints hold plain settings, nothing to instantiate")
            check_plain(item, f"{where}.{key}")
        return
    raise ValueError(f"{where} holds a {type(value).__name__}; checkpoints hold plain values only")


def backbone_spec(spec: Any, where: str) -> dict[str, Any]:
    """The checkpoint's backbone spec, validated (the first releases' AST `_target_` read as name=ast)."""
    if isinstance(spec, Mapping) and spec.get("_target_") == LEGACY_AST_TARGET and "name" not in spec:
        spec = {"name": "ast", **{k: v for k, v in spec.items() if k != "_target_"}}
        spec.setdefault("head_norm_eps", spec.get("norm_eps", 1e-6))  # what those models were built with
    check_plain(spec, where)
    _, size = validate_spec(spec, where)
    return {"name": spec["name"], **size}


def model_arguments() -> set[str]:
    """Every constructor keyword of the project's LightningModules (what `hyper_parameters` may hold)."""
    from fast_ast.modules.event_classifier import EventClassifier  # noqa: PLC0415 (imports this module)

    return {name for cls in (AudioClassifier, EventClassifier) for name in constructor_arguments(cls)} | LEGACY_KEYS


def check_hyper_parameters(hparams: Any, path: Path) -> dict[str, Any]:
    """The validated hyper_parameters of checkpoint `path` (ValueError naming the file and key)."""
    if not isinstance(hparams, Mapping):
        raise ValueError(f"{path}: hyper_parameters must be a mapping, got {type(hparams).__name__}")
    unknown = sorted(set(hparams) - model_arguments())
    if unknown:
        raise ValueError(f"{path}: hyper_parameters has keys no fast_ast model takes: {unknown}")
    try:
        checked = {}
        for key, value in hparams.items():
            if key == "backbone":
                checked[key] = backbone_spec(value, "hyper_parameters.backbone")
            else:
                check_plain(value, f"hyper_parameters.{key}")
                checked[key] = value
    except ValueError as error:
        raise ValueError(f"{path}: refused: {error}") from None
    return checked


def read_export(path: Path) -> dict[str, Any]:
    """A project export (directory or its model.safetensors) as a checkpoint dict {state_dict, hyper_parameters}."""
    directory = path if path.is_dir() else path.parent
    config_path, weights_path = directory / EXPORT_CONFIG, directory / EXPORT_WEIGHTS
    for required in (config_path, weights_path):
        if not required.is_file():
            raise FileNotFoundError(f"{directory}: a fast_ast export needs {required.name} (not found)")
    config = read_json(config_path)
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        hint = " (a Hugging Face export: train from it with model.pretrained=DIR)" if isinstance(config, dict) and "model_type" in config else ""
        raise ValueError(f"{config_path} is not a fast_ast export: no \"format\": \"{EXPORT_FORMAT}\"{hint}")
    if config.get("model") not in EXPORT_MODELS:
        raise ValueError(f"{config_path}: model must be one of {EXPORT_MODELS}, got {config.get('model')!r}")
    state = read_safetensors(weights_path)[0]
    return {"state_dict": state, "hyper_parameters": check_hyper_parameters(config.get("hyper_parameters"), config_path), "model": config["model"]}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A fast_ast checkpoint (.ckpt, or a project export), read weights-only, its hyper_parameters validated."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".safetensors":
        return read_export(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated files, pickled objects, not a zip archive
        raise ValueError(f"{path} cannot be read as a weights-only checkpoint: {error}") from None
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path} is not a fast_ast checkpoint: it holds a {type(checkpoint).__name__}")
    for key in ("state_dict", "hyper_parameters"):
        if key not in checkpoint:
            raise ValueError(f"{path} is not a fast_ast checkpoint: no '{key}'")
    checkpoint = dict(checkpoint)
    checkpoint["hyper_parameters"] = check_hyper_parameters(checkpoint["hyper_parameters"], path)
    return checkpoint


def constructor_arguments(cls: type) -> set[str]:
    """Keyword arguments of `cls.__init__` and of every AudioClassifier it derives from."""
    names = {name for klass in cls.__mro__ if issubclass(klass, AudioClassifier) for name in inspect.signature(klass.__init__).parameters}
    return names - {"self", "args", "kwargs"} - NOT_SAVED


def rebuild(checkpoint: dict[str, Any], cls: type = AudioClassifier, **overrides: Any) -> AudioClassifier:
    """A `cls` model from a checkpoint dict (read_checkpoint); hyperparameters `cls` does not take
    (e.g. an earlier KD student's kd config) are dropped, and so are weights outside its own modules (a teacher)."""
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
