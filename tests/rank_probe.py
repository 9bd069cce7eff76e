"""A callback for the SLURM tests: what each DDP rank trained on, and the weights it ended with.

Given as `+callbacks.rank_probe._target_=tests.rank_probe.RankProbe +callbacks.rank_probe.out_dir=<dir>`
(the job must import `tests`: PYTHONPATH=<repo>). Writes <out_dir>/rank<global rank>.pt at the end of
fit: {"rank", "world_size", "node" (hostname), "seen" {epoch: [clip ids]}, "weights" (state_dict)}.
A requeued job's probe records the epochs of its last run only.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from lightning.pytorch import Callback


class RankProbe(Callback):
    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)
        self.seen: dict[int, list[str]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch: dict, batch_idx: int) -> None:
        self.seen.setdefault(trainer.current_epoch, []).extend(batch["id"])

    def on_fit_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        probe = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "node": socket.gethostname(),
            "seen": self.seen,
            "weights": {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()},
        }
        torch.save(probe, self.out_dir / f"rank{trainer.global_rank}.pt")
