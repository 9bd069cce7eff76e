"""results.json: the stable, documented record of one run (read by sweep reports).

Keys (version 1):
  version        1
  task           "train" | "eval"
  status         "completed" | "failed" (with "error")
  run_dir        the run directory
  overrides      Hydra's command-line overrides of this job, e.g. ["tome.r=16", "kd.lambda=0.1"]
  monitor        {"name": "val/acc", "best": float | null}
  metrics        final metrics, e.g. {"val/acc": .., "val/mAP": .., "test/acc": .., ...}
  checkpoints    {"best": path | null, "last": path | null, "averaged": path | null}
  params         {"total": int, "trainable": int}
  tokens         {"input": N tokens entering block 1, "per_layer": [tokens entering each block]}
                 (null and [] for backbones without token blocks)
  throughput     {"clips_per_s": float, "batch_size": int, "repeats": int, "device": str}
  tome           the tome config ({"r": .., ...}); kd: the kd config
  wall_time_s    seconds from start to end of the task
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig

from fast_ast.measure.timing import eval_throughput
from fast_ast.measure.tokens import tokens_per_layer

RESULTS_FILE = "results.json"
RESULTS_VERSION = 1


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def this_job_overrides() -> list[str]:
    """This Hydra job's command-line overrides ([] outside a Hydra run)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def model_record(model: torch.nn.Module, batch_size: int, repeats: int) -> dict[str, Any]:
    """The `params`, `tokens` and `throughput` entries of a trained model (an AudioClassifier) on its device:
    eval clips/s of waveform -> logits on a batch of random clips, median of `repeats`."""
    device = next(model.parameters()).device
    example = torch.randn(batch_size, model.hparams.clip_samples, device=device) * 0.1
    backbone = model.backbone.eval()
    per_layer = tokens_per_layer(backbone, model.frontend(example[:1]))
    return {
        "params": {
            "total": sum(p.numel() for p in backbone.parameters()),
            "trainable": sum(p.numel() for p in backbone.parameters() if p.requires_grad),
        },
        "tokens": {"input": per_layer[0] if per_layer else None, "per_layer": per_layer},
        "throughput": eval_throughput(model, example, repeats=repeats),
    }


def write_results(run_dir: str | Path, results: dict[str, Any]) -> Path:
    """Writes results.json through a temp file and a rename: a reader never sees half a file."""
    path = Path(run_dir) / RESULTS_FILE
    payload = {"version": RESULTS_VERSION, **_jsonable(results)}
    temporary = path.with_name(f".{RESULTS_FILE}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RESULTS_FILE
    results = json.loads(path.read_text())
    if results.get("version") != RESULTS_VERSION:
        raise ValueError(f"{path}: results version {results.get('version')}, expected {RESULTS_VERSION}")
    return results
