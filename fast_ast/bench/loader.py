"""suite=loader: training-loader clips/s against the model's training clips/s — is loading the bottleneck?

loader  the configured corpus's train DataLoader (data.num_workers workers, data.batch_size, data.cache_dir):
        clips/s over `repeats` batches from the start of an epoch, after `warmup` batches have started the
        workers (setup's file check, which fills data.cache_dir, is done before any timing).
model   one optimisation step of the configured model (augmented features, forward, backward, Adam step)
        on a loader batch of the same size on `device`: clips/s from the median step time.
loader/model > 1 means the workers keep up with training.
"""

from __future__ import annotations

import itertools
import statistics
import time
import warnings

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from fast_ast.device import resolve_device
from fast_ast.device import device_description
from fast_ast.measure.timing import alternating_times
from fast_ast.modules.build import build_model
from fast_ast.modules.optim import build_optimizer


def epochs(loader):
    """Endless batches of `loader`, one epoch after another; the first epoch starts at the first next()."""
    while True:
        yield from loader


def loader_clips_per_s(loader, warmup: int, repeats: int) -> tuple[float, dict]:
    """(clips/s over `repeats` batches, the last batch). `warmup` batches first start the workers; the timed
    batches come from a fresh epoch begun before the clock starts, so nothing prefetched earlier is counted."""
    stream = epochs(loader)
    for _ in range(warmup):
        next(stream)
    timed = iter(loader)  # drains the warm-up epoch's prefetched batches, then prefetches from the start
    clips, start = 0, time.perf_counter()
    for batch in itertools.islice(itertools.chain(timed, epochs(loader)), repeats):
        clips += len(batch["id"])
    return clips / (time.perf_counter() - start), batch


def train_step_seconds(model, batch: dict, device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds of one training step (training_step + backward + optimiser step) per repeat."""
    model = model.to(device).train()
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], model.hparams.optim)
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def step():
        optimizer.zero_grad(set_to_none=True)
        model.training_step(batch, 0).backward()
        optimizer.step()

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer attached: logging is a no-op
        return alternating_times({"train step": step}, device, warmup, repeats)["train step"]


def run(cfg: DictConfig) -> dict:
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    device = resolve_device(cfg.device)
    loader_rate, batch = loader_clips_per_s(datamodule.train_dataloader(), cfg.warmup, cfg.repeats)
    model = build_model(cfg, datamodule)
    seconds = train_step_seconds(model, batch, device, cfg.warmup, cfg.repeats)
    model_rate = len(batch["id"]) / statistics.median(seconds)
    result = {
        "loader_clips_per_s": loader_rate,
        "train_clips_per_s": model_rate,
        "loader_over_train": loader_rate / model_rate,
        "batch_size": len(batch["id"]),
        "num_workers": datamodule.num_workers,
        "cache_dir": str(datamodule.store.cache_dir) if getattr(datamodule, "store", None) and datamodule.store.cache_dir else None,
        "device": device_description(device),
    }
    table = Table(title=f"loader vs training — {result['device']}")
    for column in ("corpus", "batch", "workers", "cache", "loader clips/s", "train clips/s", "loader / train"):
        table.add_column(column)
    table.add_row(
        type(datamodule).__name__,
        str(result["batch_size"]),
        str(result["num_workers"]),
        str(result["cache_dir"] is not None),
        f"{loader_rate:.1f}",
        f"{model_rate:.1f}",
        f"{result['loader_over_train']:.2f}",
    )
    Console().print(table)
    return result
