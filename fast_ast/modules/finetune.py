"""Fine-tuning strategies (conf `model.finetune`): which backbone parameters train.

full: everything; head: only the classification head; last_n: the backbone's last `last_n` stages
(transformer blocks, CNN stages), what follows them (the final norm) and the head (Backbone.trainable_tail).
"""

from __future__ import annotations

from fast_ast.backbones.base import Backbone

STRATEGIES = ("full", "head", "last_n")


def apply_finetune(backbone: Backbone, strategy: str = "full", last_n: int = 1) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"model.finetune.strategy must be one of {STRATEGIES}, got {strategy!r}")
    stages = backbone.num_stages
    if strategy == "last_n" and not (isinstance(last_n, int) and 1 <= last_n <= stages):
        raise ValueError(f"model.finetune.last_n must be in 1..{stages} (the backbone's stages), got {last_n!r}")
    if strategy == "full":
        backbone.requires_grad_(True)
        return
    backbone.requires_grad_(False)
    for module in backbone.trainable_tail(last_n if strategy == "last_n" else 0):
        module.requires_grad_(True)
