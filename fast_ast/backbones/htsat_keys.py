"""Key mapping from HTS-AT's released checkpoints (RetroCirce/HTS-Audio-Transformer) to our HTSAT.

The release is a Lightning `.ckpt` of its `SEDWrapper`: `state_dict` keys `sed_model.<HTSAT_Swin_Transformer
name>`. Differences from our layout (fast_ast.backbones.htsat):
- patch merging sits at the end of Swin layer i there (`layers.{i}.downsample.*`) and at the start of
  timm's stage i + 1 here (`layers.{i+1}.downsample.*`); the 2x2 concatenation order is the same;
- buffers we recompute are dropped: `attn_mask`, `relative_position_index`;
- modules we do not have are dropped: the waveform frontend (`spectrogram_extractor.*`,
  `logmel_extractor.*`: features come from our FbankFrontend) and `head.*` (a Linear the token-semantic
  path never calls; the release's own loader pops it too).
Everything else (bn0, patch_embed, blocks, norm, tscam_conv) keeps its name.
"""

from __future__ import annotations

import re

import torch

PREFIX = "sed_model."
UNUSED_MODULES = ("spectrogram_extractor.", "logmel_extractor.", "head.")
RECOMPUTED_BUFFERS = (".attn_mask", ".relative_position_index")
_DOWNSAMPLE = re.compile(r"layers\.(\d+)\.downsample\.(.+)$")


def htsat_to_ours(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(our state dict, the dropped keys) of a released HTS-AT state dict (`sed_model.` prefix optional)."""
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        name = key.removeprefix(PREFIX)
        if name.startswith(UNUSED_MODULES) or name.endswith(RECOMPUTED_BUFFERS):
            dropped.append(key)
            continue
        match = _DOWNSAMPLE.match(name)
        if match is not None:
            name = f"layers.{int(match.group(1)) + 1}.downsample.{match.group(2)}"
        out[name] = value
    return out, dropped
