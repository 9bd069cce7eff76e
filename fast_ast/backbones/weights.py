"""Pretrained weights for every backbone, one converter per checkpoint layout.

Formats (`fmt`) of the AST family (AST and any timm ViT/DeiT, fast_ast.backbones.vit):
    ast      original AST `.pth` (keys `module.v.*`, `module.mlp_head.*`; timm's unused `v.head*` dropped)
    hf       Hugging Face directory (`config.json` + `model.safetensors`, `ASTForAudioClassification`)
    timm     a timm DeiT/ViT ImageNet state dict (AST's ImageNet initialisation; for backbone=vit, the
             named model's own state dict)
    encoder  any file whose keys under `prefix` are an AST state dict (`v.*`, optional `mlp_head.*`) or a
             Hugging Face `ASTModel` state dict (`embeddings.*`, `encoder.layer.N.*`, `layernorm.*`: a
             self-supervised encoder as the SSL fine-tuning project saves it); keys outside the prefix
             (`projector.*`, `decoder.*`, ...) are ignored and listed
Formats of the other families:
    htsat        HTS-AT's released Lightning `.ckpt` (`state_dict` keys `sed_model.*`; fast_ast.backbones.htsat_keys)
    efficientat  EfficientAT's released `mn*.pt` state dict (`features.N.*`, `classifier.*`; mobilenet_keys)
For every backbone:
    project  a Lightning checkpoint of this project (`state_dict` keys `backbone.*`)
    auto     detected from the path and the keys (logged)

Every format is converted to our key layout, then adapted the same way for all. AST family
(`fit_state_dict`): positional embeddings resized to our patch grid as AST does (per axis: centre crop when
smaller, bilinear interpolation when larger), a different class count re-initialises only `mlp_head.1`, a
checkpoint without any `mlp_head.*` keeps a fresh head. Other families (`fit_family_state_dict`): a
different class count re-initialises the class-dependent layer (HTS-AT `tscam_conv`, MobileNet `head.5`).
Any other mismatch raises one ValueError listing every key.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fast_ast.backbones.ast import AST, NUM_PREFIX_TOKENS, patch_grid
from fast_ast.backbones.base import Backbone
from fast_ast.backbones.hf_keys import hf_config, hf_head_eps, hf_to_ast
from fast_ast.backbones.htsat import HTSAT
from fast_ast.backbones.htsat_keys import htsat_to_ours
from fast_ast.backbones.mobilenet import MobileNetV3Audio
from fast_ast.backbones.mobilenet_keys import efficientat_to_ours
from fast_ast.frontend.fbank import FbankFrontend
from fast_ast.model_files import read_json, read_safetensors

log = logging.getLogger(__name__)

FORMATS = ("auto", "ast", "hf", "timm", "encoder", "htsat", "efficientat", "project")
# The formats each family reads (the AST family: AST and ViT), and the layer a new class count re-initialises.
FAMILY_FORMATS = {
    AST: ("ast", "hf", "timm", "encoder", "project"),
    HTSAT: ("htsat", "project"),
    MobileNetV3Audio: ("efficientat", "project"),
}
CLASS_LAYERS = {HTSAT: "tscam_conv", MobileNetV3Audio: "head.5"}
HEAD = "mlp_head."
CLASSIFIER = "mlp_head.1."
# config.json entries that must equal ours; max_length / num_mel_bins only set the grid (resized).
HF_ARCHITECTURE_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
    "patch_size",
    "qkv_bias",
    "frequency_stride",
    "time_stride",
)


@dataclass
class Converted:
    """A checkpoint in our key layout. grid: (freq rows, time columns) of its pos-embed, None = infer."""

    state: dict[str, torch.Tensor]
    grid: tuple[int, int] | None = None


# ---- reading files -----------------------------------------------------------------------------
def read_file(path: Path) -> tuple[Any, dict[str, str]]:
    """(tensors or checkpoint dict, safetensors metadata) of a `.safetensors` or torch file."""
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True), {}
    except Exception as error:  # an unreadable or non-tensor pickle: name the file, keep the cause
        raise ValueError(f"{path}: cannot be read as a weights-only torch checkpoint: {error}") from error


def tensor_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a file: bare, or wrapped as {'model': ...} (DeiT's release) or {'state_dict': ...}."""
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    return obj


def detect_format(path: Path, obj: Any, prefix: str | None) -> str:
    """Which format a file or directory is in (see the module docstring)."""
    if path.is_dir() or (path.name == "model.safetensors" and (path.parent / "config.json").is_file()):
        return "hf"
    if prefix is not None:
        return "encoder"
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        if any(str(key).startswith("backbone.") for key in obj["state_dict"]):
            return "project"
    keys = list(tensor_dict(obj, path))
    if any(key.startswith(("module.v.", "v.")) for key in keys):
        return "ast"
    if "patch_embed.proj.weight" in keys and any(key.startswith("blocks.") for key in keys):
        return "timm"
    raise ValueError(
        f"{path}: cannot tell the weights format from its keys ({', '.join(keys[:6])}, ...); "
        f"pass fmt= one of {FORMATS[1:]} (and prefix= for an encoder-only checkpoint)"
    )


# ---- format converters -------------------------------------------------------------------------
def from_ast(state: dict[str, torch.Tensor]) -> Converted:
    """Original AST checkpoint (DataParallel `module.` prefix optional); drops timm's unused DeiT heads."""
    state = {key.removeprefix("module."): value for key, value in state.items()}
    unused = sorted(key for key in state if key.startswith(("v.head.", "v.head_dist.")))
    if unused:
        log.info("dropping the unused timm DeiT heads of the AST checkpoint: %s", ", ".join(unused))
    return Converted({key: value for key, value in state.items() if key not in unused})


def from_hf(directory: Path, backbone: AST) -> Converted:
    """Hugging Face AST directory; its config must describe our architecture (the grid may differ)."""
    config_path, weights_path = directory / "config.json", directory / "model.safetensors"
    for required in (config_path, weights_path):
        if not required.is_file():
            raise ValueError(f"{directory}: a Hugging Face AST directory needs {required.name} (not found)")
    config = read_json(config_path)
    ours = hf_config(backbone)
    differences = []
    for key in HF_ARCHITECTURE_KEYS:
        theirs = config.get(key, "<absent>")
        same = (
            math.isclose(theirs, ours[key], rel_tol=1e-6)
            if isinstance(theirs, float) and isinstance(ours[key], float)
            else theirs == ours[key]
        )
        if not same:
            differences.append(f"{key}: config {theirs!r} vs backbone {ours[key]!r}")
    head_eps = backbone.mlp_head[0].eps
    if isinstance(config.get("layer_norm_eps"), float) and not math.isclose(hf_head_eps(config), head_eps, rel_tol=1e-6):
        differences.append(f"the head's layer_norm_eps: config {hf_head_eps(config)!r} vs head_norm_eps {head_eps!r}")
    if differences:
        raise ValueError(
            f"{config_path} does not describe this backbone ({'; '.join(differences)}); "
            "set model.backbone.* (embed_dim, depth, num_heads, mlp_ratio, norm_eps and head_norm_eps, patch_size, fstride, tstride) to match"
        )
    grid_keys = ("num_mel_bins", "max_length", "patch_size", "frequency_stride", "time_stride")
    grid = patch_grid(*(config[key] for key in grid_keys)) if all(key in config for key in grid_keys) else None
    return Converted(hf_to_ast(read_safetensors(weights_path)[0]), grid)


def from_timm(state: dict[str, torch.Tensor], num_prefix_tokens: int = NUM_PREFIX_TOKENS) -> Converted:
    """timm DeiT/ViT ImageNet weights, as AST initialises from them.

    patch_embed.proj.weight [D, 3, p, p] -> summed over the colour channels [D, 1, p, p]; for a backbone with
    a distillation token (num_prefix_tokens 2: AST), a ViT without one gets one (and its positional embedding)
    copied from the class token; the ImageNet heads are dropped. Its patch grid is square.
    """
    dropped = sorted(key for key in state if key.startswith(("head.", "head_dist.")))
    if dropped:
        log.info("dropping the ImageNet heads of the timm checkpoint: %s", ", ".join(dropped))
    state = {key: value for key, value in state.items() if key not in dropped}
    proj = state.get("patch_embed.proj.weight")
    if proj is not None and proj.dim() == 4:
        state["patch_embed.proj.weight"] = proj.sum(dim=1, keepdim=True)
    if num_prefix_tokens == 2 and "dist_token" not in state and "cls_token" in state and "pos_embed" in state:
        log.info("timm checkpoint has no distillation token: copying the class token and its positional embedding")
        state["dist_token"] = state["cls_token"].clone()
        pos = state["pos_embed"]
        state["pos_embed"] = torch.cat((pos[:, :1], pos[:, :1], pos[:, 1:]), dim=1)
    prefix = 1 + ("dist_token" in state)
    return Converted({"v." + key: value for key, value in state.items()}, grid=square_grid(state.get("pos_embed"), prefix))


def from_encoder(state: dict[str, torch.Tensor], metadata: dict[str, str], prefix: str, path: Path) -> Converted:
    """Keys under `prefix` with the prefix removed (AST keys, or Hugging Face ASTModel keys converted with
    hf_keys.hf_to_ast); the others are ignored (listed). Metadata 'grid' = 'FxT'."""
    inside = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
    if any(key.startswith(("embeddings.", "encoder.layer.")) for key in inside):
        log.info("keys under %r are Hugging Face ASTModel keys: converting them to the AST layout", prefix)
        inside = hf_to_ast(inside)
    ignored = sorted(key for key in state if not key.startswith(prefix))
    if not inside:
        raise ValueError(f"{path}: no key starts with prefix {prefix!r} (keys: {', '.join(sorted(state)[:6])}, ...)")
    if ignored:
        log.info("ignoring %d keys outside prefix %r: %s", len(ignored), prefix, ", ".join(ignored))
    grid = None
    if "grid" in metadata:
        try:
            rows, columns = (int(part) for part in metadata["grid"].lower().split("x"))
        except ValueError as error:
            raise ValueError(f"{path}: metadata grid must look like '12x101', got {metadata['grid']!r}") from error
        grid = (rows, columns)
    return Converted(inside, grid)


def from_project(checkpoint: dict[str, Any], path: Path) -> Converted:
    """A Lightning checkpoint of AudioClassifier: `backbone.*` weights, grid from its hyper-parameters
    (validated as every checkpoint's are: fast_ast.modules.checkpoint)."""
    from fast_ast.modules.checkpoint import check_hyper_parameters  # noqa: PLC0415 (it imports the classifier, which imports this)

    hparams = check_hyper_parameters(checkpoint.get("hyper_parameters") or {}, path)
    state = checkpoint["state_dict"]
    inside = {key.removeprefix("backbone."): value for key, value in state.items() if key.startswith("backbone.")}
    if not inside:
        raise ValueError(f"{path}: the checkpoint's state_dict has no 'backbone.*' keys")
    ignored = sorted(key for key in state if not key.startswith("backbone."))
    if ignored:
        log.info("ignoring %d non-backbone keys of the project checkpoint: %s", len(ignored), ", ".join(ignored))
    return Converted(inside, project_grid(hparams))


def project_grid(hparams: dict[str, Any]) -> tuple[int, int] | None:
    """Patch grid of the AudioClassifier that wrote these hyper-parameters (None when they are absent)."""
    backbone, features = hparams.get("backbone"), hparams.get("features")
    if not isinstance(backbone, dict) or not isinstance(features, dict) or backbone.get("name", "ast") != "ast":
        return None  # no hyper-parameters, or a ViT (its patch size is the timm model's): infer_grid decides
    features = {**default_arguments(FbankFrontend), **features}
    backbone = {**default_arguments(AST), **backbone}
    return patch_grid(
        features["num_mel_bins"], features["target_length"], backbone["patch_size"], backbone["fstride"], backbone["tstride"]
    )


def default_arguments(cls: type) -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}


# ---- common post-processing --------------------------------------------------------------------
def square_grid(pos_embed: torch.Tensor | None, num_prefix_tokens: int = NUM_PREFIX_TOKENS) -> tuple[int, int] | None:
    """Grid side of an ImageNet pos-embed [1, prefix + side^2, D] (prefix: cls, and dist if any)."""
    if pos_embed is None:
        return None
    side = math.isqrt(pos_embed.shape[1] - num_prefix_tokens)
    return (side, side) if side * side == pos_embed.shape[1] - num_prefix_tokens else None


def infer_grid(num_patches: int, target: tuple[int, int], path: Path) -> tuple[int, int]:
    """Source grid when the checkpoint does not say: ours if the count matches, else our frequency rows
    (AST checkpoints differ in clip length), else square (ImageNet)."""
    if num_patches == target[0] * target[1]:
        return target
    if num_patches % target[0] == 0:
        return target[0], num_patches // target[0]
    side = math.isqrt(num_patches)
    if side * side == num_patches:
        return side, side
    raise ValueError(
        f"{path}: cannot infer the patch grid of a positional embedding with {num_patches} patches "
        f"for a backbone with grid {target[0]}x{target[1]}"
    )


def fit_axis(pos: torch.Tensor, size: int, axis: int) -> torch.Tensor:
    """pos [1, D, F, T] -> `size` along axis (2 = freq, 3 = time): centre crop if smaller, bilinear if larger."""
    old = pos.shape[axis]
    if size < old:
        start = old // 2 - size // 2
        return pos.narrow(axis, start, size)
    if size > old:
        shape = (size, pos.shape[3]) if axis == 2 else (pos.shape[2], size)
        return F.interpolate(pos, size=shape, mode="bilinear")
    return pos


def resize_pos_embed(
    pos_embed: torch.Tensor, source: tuple[int, int], target: tuple[int, int], num_prefix_tokens: int = NUM_PREFIX_TOKENS
) -> torch.Tensor:
    """[1, P + Fs*Ts, D] -> [1, P + Ft*Tt, D]: the P cls/dist entries kept, the patch grid fitted time axis first."""
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = pos_embed.shape[-1]
    grid = patches.float().transpose(1, 2).reshape(1, dim, *source)
    grid = fit_axis(fit_axis(grid, target[1], axis=3), target[0], axis=2)
    patches = grid.reshape(1, dim, target[0] * target[1]).transpose(1, 2).to(pos_embed.dtype)
    return torch.cat((prefix, patches), dim=1)


def fit_state_dict(backbone: AST, converted: Converted, path: Path) -> dict[str, torch.Tensor]:
    """Adapt a converted checkpoint to `backbone` (see the module docstring); a complete state dict."""
    state = dict(converted.state)
    own = backbone.state_dict()
    pos, prefix = state.get("v.pos_embed"), backbone.num_prefix_tokens
    if pos is not None and pos.dim() == 3 and pos.shape[-1] == own["v.pos_embed"].shape[-1]:
        source = converted.grid or infer_grid(pos.shape[1] - prefix, backbone.grid, path)
        if source[0] * source[1] != pos.shape[1] - prefix:
            raise ValueError(f"{path}: grid {source} does not match a pos_embed of {pos.shape[1]} tokens")
        if source != backbone.grid:
            log.info("resizing positional embeddings from grid %s to %s", source, backbone.grid)
            state["v.pos_embed"] = resize_pos_embed(pos, source, backbone.grid, prefix)

    if not any(key.startswith(HEAD) for key in state):
        log.info("%s has no mlp_head: the classification head keeps its fresh initialisation", path)
        state.update({key: value for key, value in own.items() if key.startswith(HEAD)})
    head_weight = state.get(CLASSIFIER + "weight")
    if head_weight is not None and head_weight.dim() == 2 and head_weight.shape != own[CLASSIFIER + "weight"].shape:
        if head_weight.shape[1] == own[CLASSIFIER + "weight"].shape[1]:
            log.info(
                "%s has %d classes, the backbone %d: re-initialising mlp_head.1 (the head's Linear)",
                path, head_weight.shape[0], backbone.num_classes,
            )
            backbone.mlp_head[1].reset_parameters()
            state.update({key: value for key, value in backbone.state_dict().items() if key.startswith(CLASSIFIER)})

    check_keys(state, own, path)
    return state


def check_keys(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], path: Path) -> None:
    """One ValueError listing every missing, unexpected or mis-shaped key of `state` against `own`."""
    problems = [f"missing {key}" for key in own if key not in state]
    problems += [f"unexpected {key}" for key in state if key not in own]
    problems += [
        f"shape {key}: checkpoint {tuple(state[key].shape)} vs backbone {tuple(own[key].shape)}"
        for key in own
        if key in state and state[key].shape != own[key].shape
    ]
    if problems:
        raise ValueError(f"{path}: {len(problems)} keys do not fit the backbone:\n  " + "\n  ".join(problems))


def fit_family_state_dict(backbone: Backbone, state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """A converted HTS-AT / MobileNet checkpoint for `backbone`: another class count re-initialises its class layer."""
    state = dict(state)
    own = backbone.state_dict()
    layer_name = CLASS_LAYERS[type(backbone)]
    weight = state.get(layer_name + ".weight")
    if weight is not None and weight.shape != own[layer_name + ".weight"].shape and weight.shape[1:] == own[layer_name + ".weight"].shape[1:]:
        log.info("%s has %d classes, the backbone %d: re-initialising %s", path, weight.shape[0], backbone.num_classes, layer_name)
        backbone.get_submodule(layer_name).reset_parameters()
        state.update({key: value for key, value in backbone.state_dict().items() if key.startswith(layer_name + ".")})
    check_keys(state, own, path)
    return state


def family_of(backbone: Backbone) -> type[Backbone]:
    for family in FAMILY_FORMATS:
        if isinstance(backbone, family):
            return family
    raise ValueError(f"no pretrained-weights formats for a {type(backbone).__name__} backbone")


def detect_family_format(backbone: Backbone, path: Path, obj: Any, prefix: str | None) -> str:
    """detect_format for the AST family; for the others: `project` for this project's checkpoints, else theirs."""
    family = family_of(backbone)
    if family is AST:
        return detect_format(path, obj, prefix)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and any(str(k).startswith("backbone.") for k in obj["state_dict"]):
        return "project"
    return FAMILY_FORMATS[family][0]


def load_pretrained(backbone: Backbone, path: str, fmt: str = "auto", prefix: str | None = None) -> None:
    """Load weights into `backbone` in place from `path` in format `fmt` (see the module docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"pretrained format must be one of {FORMATS}, got {fmt!r}")
    family = family_of(backbone)
    if fmt != "auto" and fmt not in FAMILY_FORMATS[family]:
        raise ValueError(
            f"model.pretrained_format={fmt!r} does not apply to the {type(backbone).__name__} backbone: "
            f"use one of {('auto', *FAMILY_FORMATS[family])}"
        )
    source = Path(path).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"pretrained weights not found: {source}")
    if fmt == "encoder" and not prefix:
        raise ValueError("pretrained format 'encoder' needs a key prefix (model.pretrained_prefix), e.g. 'encoder.'")
    obj, metadata = (None, {}) if source.is_dir() else read_file(source)
    if fmt == "auto":
        fmt = detect_family_format(backbone, source, obj, prefix)
        log.info("detected pretrained format %r for %s", fmt, source)
    if family is not AST:
        if fmt == "project":
            state = project_state(obj, source).state
        elif fmt == "htsat":
            state, dropped = htsat_to_ours(tensor_dict(obj, source))
            log.info("dropping %d HTS-AT keys with no counterpart (frontend, unused head, recomputed buffers)", len(dropped))
        else:
            state = efficientat_to_ours(tensor_dict(obj, source), backbone)
        backbone.load_state_dict(fit_family_state_dict(backbone, state, source))
        log.info("loaded %s weights (%s) into the backbone", fmt, source)
        return
    if fmt == "hf":
        converted = from_hf(source if source.is_dir() else source.parent, backbone)
    elif fmt == "project":
        converted = project_state(obj, source)
    elif fmt == "ast":
        converted = from_ast(tensor_dict(obj, source))
    elif fmt == "timm":
        converted = from_timm(tensor_dict(obj, source), backbone.num_prefix_tokens)
    else:
        converted = from_encoder(tensor_dict(obj, source), metadata, prefix, source)
    backbone.load_state_dict(fit_state_dict(backbone, converted, source))
    log.info("loaded %s weights (%s) into the backbone", fmt, source)


def project_state(obj: Any, source: Path) -> Converted:
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise ValueError(f"{source}: not a Lightning checkpoint (no 'state_dict' entry)")
    return from_project(obj, source)
