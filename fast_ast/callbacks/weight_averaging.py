"""AST's weight averaging (the recipes' wa_start..wa_end): the mean of the model's weights taken at the
end of each epoch in [start_epoch, end_epoch] (1-based, inclusive). The average is applied after fit
(train.py) and is what gets evaluated and saved as checkpoints/averaged.ckpt."""

from __future__ import annotations

import logging

import torch
from lightning.pytorch import Callback

log = logging.getLogger(__name__)


class EpochWeightAveraging(Callback):
    def __init__(self, start_epoch: int | None = None, end_epoch: int | None = None):
        if (start_epoch is None) != (end_epoch is None):
            raise ValueError("callbacks.weight_averaging needs both start_epoch and end_epoch (or neither)")
        if start_epoch is not None and not 1 <= start_epoch <= end_epoch:
            raise ValueError(f"callbacks.weight_averaging: need 1 <= start_epoch <= end_epoch, got {start_epoch}..{end_epoch}")
        self.start_epoch, self.end_epoch = start_epoch, end_epoch
        self.count = 0
        self.average: dict[str, torch.Tensor] | None = None

    @property
    def enabled(self) -> bool:
        return self.start_epoch is not None

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Before training: the window must end within the run (else the average would silently cover fewer epochs)."""
        if stage != "fit" or not self.enabled or trainer.max_epochs in (None, -1):
            return
        if self.end_epoch > trainer.max_epochs:
            raise ValueError(
                f"callbacks.weight_averaging.end_epoch={self.end_epoch} is beyond trainer.max_epochs={trainer.max_epochs}: "
                f"the average of epochs {self.start_epoch}..{self.end_epoch} would never be complete; lower "
                "callbacks.weight_averaging.end_epoch (and start_epoch) or raise trainer.max_epochs"
            )

    def on_train_end(self, trainer, pl_module) -> None:
        """A run stopped early (max_steps, early stopping) averages fewer epochs than asked: say so."""
        expected = self.end_epoch - self.start_epoch + 1 if self.enabled else 0
        if self.enabled and self.count < expected:
            log.warning(
                "callbacks.weight_averaging: training stopped early; the average covers %d of the %d epochs %d..%d",
                self.count, expected, self.start_epoch, self.end_epoch,
            )

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if not self.enabled or not self.start_epoch <= epoch <= self.end_epoch:
            return
        state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        self.count += 1
        if self.average is None:
            self.average = state
            return
        for key, value in state.items():
            if value.is_floating_point():
                self.average[key] += (value - self.average[key]) / self.count
            else:
                self.average[key] = value

    def state_dict(self) -> dict:
        return {"count": self.count, "average": self.average}

    def load_state_dict(self, state_dict: dict) -> None:
        self.count, self.average = state_dict["count"], state_dict["average"]
