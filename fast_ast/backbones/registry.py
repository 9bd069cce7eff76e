"""The fixed registry of backbones: `model.backbone.name` -> one of the project's own classes.

Backbones are never instantiated from a dotted path: a spec read from a config or a checkpoint is
{"name": <registered name>, <size key>: <value>, ...}, and every size key must be a keyword of the
class's constructor, holding a scalar (int, float, bool, str, None) or a list of scalars of the
annotated type. Anything else (an unknown name or key, a nested mapping such as a `_target_` entry,
a value of the wrong type) is refused with the key named, before anything is built.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from fast_ast.backbones.ast import AST
from fast_ast.backbones.base import Backbone
from fast_ast.backbones.htsat import HTSAT
from fast_ast.backbones.mobilenet import MobileNetV3Audio
from fast_ast.backbones.vit import ViT

BACKBONES: dict[str, type[Backbone]] = {
    "ast": AST,
    "vit": ViT,
    "htsat": HTSAT,
    "mobilenet": MobileNetV3Audio,
}

# Given by the model (corpus and features), never by `model.backbone.*`.
INPUT_ARGUMENTS = ("num_classes", "input_fdim", "input_tdim")


def backbone_class(name: Any, where: str = "model.backbone.name") -> type[Backbone]:
    if not isinstance(name, str) or name not in BACKBONES:
        raise ValueError(f"{where} must be one of {sorted(BACKBONES)}, got {name!r}")
    return BACKBONES[name]


def size_arguments(cls: type[Backbone]) -> dict[str, Any]:
    """The size keys `cls` takes: {keyword: type hint}, without the input arguments."""
    hints = typing.get_type_hints(cls.__init__)
    parameters = inspect.signature(cls.__init__).parameters
    return {name: hints.get(name, Any) for name in parameters if name != "self" and name not in INPUT_ARGUMENTS}


def matches(value: Any, hint: Any) -> bool:
    """Whether a plain value has the annotated type (int for float allowed, bool never for int/float)."""
    if hint is Any:
        return value is None or isinstance(value, (bool, int, float, str))
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        items = [a for a in typing.get_args(hint) if a is not Ellipsis] or [Any]
        return all(matches(item, items[0]) for item in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return False


def validate_spec(spec: Any, where: str = "model.backbone") -> tuple[type[Backbone], dict[str, Any]]:
    """(class, size keywords) of a backbone spec; ValueError naming the key of anything not allowed."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where} must be a mapping with a `name` and size keys, got {type(spec).__name__}")
    cls = backbone_class(spec.get("name"), f"{where}.name")
    allowed = size_arguments(cls)
    size: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "name":
            continue
        if key not in allowed:
            raise ValueError(
                f"{where}.{key} is not a setting of backbone {spec['name']!r}; its settings are {sorted(allowed)}"
            )
        if isinstance(value, Mapping) or not matches(value, allowed[key]):
            raise ValueError(f"{where}.{key} must be {describe(allowed[key])}, got {value!r}")
        size[key] = list(value) if isinstance(value, tuple) else value
    return cls, size


def describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def build_backbone(spec: Mapping[str, Any], num_classes: int, input_fdim: int, input_tdim: int) -> Backbone:
    """The backbone `spec` names, for `num_classes` classes on [B, input_tdim, input_fdim] features."""
    cls, size = validate_spec(spec)
    return cls(num_classes=num_classes, input_fdim=input_fdim, input_tdim=input_tdim, **size)


def backbone_name(backbone: Backbone) -> str:
    """The registry name of a built backbone."""
    for name, cls in BACKBONES.items():
        if type(backbone) is cls:
            return name
    raise ValueError(f"{type(backbone).__name__} is not a registered backbone ({sorted(BACKBONES)})")
