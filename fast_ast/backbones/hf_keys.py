"""Key mapping between our AST state dict and Hugging Face's `ASTForAudioClassification` checkpoints.

The Hugging Face side is the on-disk layout that `save_pretrained` writes (and that the published
`MIT/ast-*` checkpoints use): `audio_spectrogram_transformer.encoder.layer.{i}.attention.attention.query`
etc. Our side is the original AST layout (`v.*` = timm DeiT, `mlp_head.0/1`). Query, key and value are
separate [D, D] Linears there and one fused [3D, D] `attn.qkv` here (rows: q, then k, then v, as timm
splits them).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from fast_ast.backbones.ast import AST

HF_PREFIX = "audio_spectrogram_transformer."

# Non-block parameters: Hugging Face name (without HF_PREFIX for the encoder part) -> ours.
_FIXED = {
    HF_PREFIX + "embeddings.cls_token": "v.cls_token",
    HF_PREFIX + "embeddings.distillation_token": "v.dist_token",
    HF_PREFIX + "embeddings.position_embeddings": "v.pos_embed",
    HF_PREFIX + "embeddings.patch_embeddings.projection.weight": "v.patch_embed.proj.weight",
    HF_PREFIX + "embeddings.patch_embeddings.projection.bias": "v.patch_embed.proj.bias",
    HF_PREFIX + "layernorm.weight": "v.norm.weight",
    HF_PREFIX + "layernorm.bias": "v.norm.bias",
    "classifier.layernorm.weight": "mlp_head.0.weight",
    "classifier.layernorm.bias": "mlp_head.0.bias",
    "classifier.dense.weight": "mlp_head.1.weight",
    "classifier.dense.bias": "mlp_head.1.bias",
}
# Per-block parameters (after `encoder.layer.{i}.` / `v.blocks.{i}.`), q/k/v excepted.
_BLOCK = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
_QKV = ("query", "key", "value")
_HF_BLOCK_KEY = re.compile(re.escape(HF_PREFIX) + r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
_AST_BLOCK_KEY = re.compile(r"v\.blocks\.(\d+)\.(.+)\.(weight|bias)$")


def hf_to_ast(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face AST state dict -> ours. Keys it does not know are kept unchanged (so a loader reports them).

    An `ASTModel` checkpoint (no classifier, keys without `audio_spectrogram_transformer.`) is accepted too.
    """
    fixed_names = {hf.removeprefix(HF_PREFIX) for hf in _FIXED if hf.startswith(HF_PREFIX)}
    if not any(key.startswith(HF_PREFIX) for key in state_dict) and any(
        key in fixed_names or key.startswith("encoder.layer.") for key in state_dict
    ):
        state_dict = {HF_PREFIX + key: value for key, value in state_dict.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}  # (block, weight|bias) -> {query: ..., ...}
    for key, value in state_dict.items():
        if key in _FIXED:
            out[_FIXED[key]] = value
            continue
        match = _HF_BLOCK_KEY.match(key)
        if match is None:
            out[key] = value
            continue
        block, name, kind = match.groups()
        if name.startswith("attention.attention.") and name.removeprefix("attention.attention.") in _QKV:
            qkv.setdefault((block, kind), {})[name.removeprefix("attention.attention.")] = value
        elif name in _BLOCK:
            out[f"v.blocks.{block}.{_BLOCK[name]}.{kind}"] = value
        else:
            out[key] = value
    for (block, kind), parts in qkv.items():
        missing = [part for part in _QKV if part not in parts]
        if missing:
            raise ValueError(
                f"block {block}: attention {kind} has {sorted(parts)} but lacks {missing} "
                f"({HF_PREFIX}encoder.layer.{block}.attention.attention.<query|key|value>.{kind})"
            )
        out[f"v.blocks.{block}.attn.qkv.{kind}"] = torch.cat([parts[part] for part in _QKV], dim=0)
    return out


def ast_to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our AST state dict -> the Hugging Face on-disk layout (the inverse of `hf_to_ast`).

    Raises ValueError naming every key that has no Hugging Face counterpart.
    """
    inverse_fixed = {ours: hf for hf, ours in _FIXED.items()}
    inverse_block = {ours: hf for hf, ours in _BLOCK.items()}
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if key in inverse_fixed:
            out[inverse_fixed[key]] = value
            continue
        match = _AST_BLOCK_KEY.match(key)
        if match is None:
            unknown.append(key)
            continue
        block, name, kind = match.groups()
        prefix = f"{HF_PREFIX}encoder.layer.{block}."
        if name == "attn.qkv":
            for part, chunk in zip(_QKV, value.chunk(3, dim=0), strict=True):
                out[f"{prefix}attention.attention.{part}.{kind}"] = chunk.contiguous()
        elif name in inverse_block:
            out[f"{prefix}{inverse_block[name]}.{kind}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"no Hugging Face AST name for: {', '.join(unknown)}")
    return out


HEAD_EPS_KEY = "fast_ast_head_norm_eps"


def hf_head_eps(config: dict[str, Any]) -> float:
    """The head LayerNorm epsilon an HF AST config describes: ours when we exported it, else layer_norm_eps."""
    return config.get(HEAD_EPS_KEY, config["layer_norm_eps"])


def hf_config(backbone: AST, class_names: list[str] | None = None) -> dict[str, Any]:
    """A `transformers.ASTConfig` dict (config.json content) describing `backbone`."""
    block = backbone.v.blocks[0]
    names = list(class_names) if class_names is not None else [f"LABEL_{i}" for i in range(backbone.num_classes)]
    if len(names) != backbone.num_classes:
        raise ValueError(f"{len(names)} class names for a backbone with {backbone.num_classes} classes")
    return {
        "architectures": ["ASTForAudioClassification"],
        "model_type": "audio-spectrogram-transformer",
        "hidden_size": backbone.embed_dim,
        "num_hidden_layers": backbone.depth,
        "num_attention_heads": backbone.num_heads,
        "intermediate_size": block.mlp.fc1.out_features,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": block.norm1.eps,
        # transformers ignores this key (its head uses layer_norm_eps); it brings our head's epsilon back exactly
        HEAD_EPS_KEY: backbone.mlp_head[0].eps,
        "patch_size": backbone.patch_size,
        "qkv_bias": block.attn.qkv.bias is not None,
        "frequency_stride": backbone.fstride,
        "time_stride": backbone.tstride,
        "max_length": backbone.input_tdim,
        "num_mel_bins": backbone.input_fdim,
        "id2label": {str(i): name for i, name in enumerate(names)},
        "label2id": {name: i for i, name in enumerate(names)},
    }
