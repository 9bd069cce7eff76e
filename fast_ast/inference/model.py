"""A trained checkpoint ready for inference: the right LightningModule, a device, and a ToMe setting.

Event models (checkpoints with a frame head, fast_ast.modules.event_classifier) load as EventClassifier,
every other fast_ast checkpoint (classifier, ToMe, KD student) as its plain AudioClassifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fast_ast.modules.checkpoint import read_checkpoint, rebuild
from fast_ast.modules.classifier import AudioClassifier
from fast_ast.modules.event_classifier import EventClassifier

FRAME_HEAD = "frame_head."


def tome_setting(trained: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """The ToMe config to run with: the checkpoint's, with every non-null `override` key replacing it."""
    setting = dict(trained or {})
    setting.update({key: value for key, value in (override or {}).items() if value is not None})
    return setting


def is_event_checkpoint(checkpoint: dict[str, Any]) -> bool:
    """Whether a read checkpoint (read_checkpoint) is an event model: a frame head, or EventClassifier's own
    hyper-parameters (a backbone with native frame logits, HTS-AT, has no frame_head weights)."""
    if checkpoint.get("model") is not None:  # a project export names its model
        return checkpoint["model"] == "EventClassifier"
    return any(key.startswith(FRAME_HEAD) for key in checkpoint["state_dict"]) or "frame_loss_weight" in checkpoint["hyper_parameters"]


def load_for_inference(path: str | Path, tome: dict[str, Any] | None, device: torch.device) -> AudioClassifier:
    """The model of checkpoint `path` in eval mode on `device`, with Token Merging set to
    tome_setting(checkpoint's tome, `tome`) (off-the-shelf ToMe when the checkpoint was trained without)."""
    checkpoint = read_checkpoint(path)
    model = rebuild(checkpoint, EventClassifier if is_event_checkpoint(checkpoint) else AudioClassifier)
    model.configure_tome(tome_setting(model.hparams.get("tome"), tome))
    return model.to(device).eval()


def is_event_model(model: AudioClassifier) -> bool:
    return isinstance(model, EventClassifier)
