"""Fine-tuning strategies (conf `model.finetune`): which AST parameters train.

full: everything; head: only mlp_head; last_n: the last `last_n` transformer blocks, the final norm and mlp_head.
"""

from __future__ import annotations

from torch import nn

STRATEGIES = ("full", "head", "last_n")


def apply_finetune(backbone: nn.Module, strategy: str = "full", last_n: int = 1) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"model.finetune.strategy must be one of {STRATEGIES}, got {strategy!r}")
    depth = len(backbone.v.blocks)
    if strategy == "last_n" and not 1 <= last_n <= depth:
        raise ValueError(f"model.finetune.last_n must be in 1..{depth} (the model's depth), got {last_n}")
    if strategy == "full":
        backbone.requires_grad_(True)
        return
    backbone.requires_grad_(False)
    trainable: list[nn.Module] = [backbone.mlp_head]
    if strategy == "last_n":
        trainable += [backbone.v.norm, *backbone.v.blocks[depth - last_n :]]
    for module in trainable:
        module.requires_grad_(True)
