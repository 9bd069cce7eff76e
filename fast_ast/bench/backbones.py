"""suite=backbones: every backbone family on the same input, measured in one run.

For each `backbones_suite.rows` entry (a conf/model/backbone/ preset plus size overrides), on features
[batch, input_tdim, input_fdim] (default 1024 frames x 64 mel bins: HTS-AT's paper input, which its
folding needs) and num_classes outputs:
    params        the backbone's parameters
    GFLOPs        per clip, one eval forward counted by torch.utils.flop_counter (multiply-add = 2 FLOPs)
    eval clips/s  backbone(x) under inference_mode
    train clips/s one training step: forward, BCE on random multi-hot targets, backward, Adam step
The backbones alternate round by round after warm-up (fast_ast.measure.timing.alternating_times) and each
figure is the median over rounds. Results: <run dir>/backbones_bench.json and a table.

    python -m fast_ast.bench suite=backbones [backbones_suite.batch_size=2] [backbones_suite.repeats=3]
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from fast_ast.backbones.base import Backbone
from fast_ast.backbones.registry import build_backbone
from fast_ast.device import device_description, resolve_device
from fast_ast.measure.timing import alternating_times
from fast_ast.resolvers import CONF_DIR


def preset_spec(row: dict[str, Any]) -> dict[str, Any]:
    """A row {preset: <conf/model/backbone name>, <size key>: value, ...} -> a registry spec."""
    path = CONF_DIR / "model" / "backbone" / f"{row['preset']}.yaml"
    if not path.is_file():
        raise ValueError(f"backbones_suite.rows: no preset {row['preset']!r} (conf/model/backbone/{row['preset']}.yaml)")
    spec = OmegaConf.to_container(OmegaConf.load(path))
    spec.update({key: value for key, value in row.items() if key not in ("preset", "label")})
    return spec


def forward_gflops(backbone: Backbone, x: torch.Tensor) -> float:
    """GFLOPs of one eval forward per clip (x [B, T, F])."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        backbone(x)
    return counter.get_total_flops() / 1e9 / x.shape[0]


def train_step(backbone: Backbone, optimizer: torch.optim.Optimizer, x: torch.Tensor, targets: torch.Tensor):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(backbone(x), targets).backward()
        optimizer.step()

    return step


def run(cfg: DictConfig) -> dict:
    settings = cfg.backbones_suite
    device = resolve_device(cfg.device)
    torch.manual_seed(0)
    x = torch.randn(settings.batch_size, settings.input_tdim, settings.input_fdim, device=device)
    targets = (torch.rand(settings.batch_size, settings.num_classes, device=device) < 0.05).float()
    models: dict[str, Backbone] = {}
    rows: dict[str, dict[str, Any]] = {}
    for row in OmegaConf.to_container(settings.rows, resolve=True):
        spec = preset_spec(row)
        label = row.get("label", row["preset"])
        backbone = build_backbone(spec, settings.num_classes, settings.input_fdim, settings.input_tdim).to(device).eval()
        models[label] = backbone
        rows[label] = {
            "backbone": spec,
            "params": sum(p.numel() for p in backbone.parameters()),
            "gflops": forward_gflops(backbone, x[:1]),
            "token_merging": backbone.supports_token_merging,
        }

    with torch.inference_mode():
        evals = alternating_times({label: (lambda m=m: m(x)) for label, m in models.items()}, device, settings.warmup, settings.repeats)
    steps = {}
    for label, backbone in models.items():
        backbone.train()
        steps[label] = train_step(backbone, torch.optim.Adam(backbone.parameters(), lr=1e-5), x, targets)
    trains = alternating_times(steps, device, settings.warmup, settings.repeats)
    for label in models:
        rows[label]["eval_clips_per_s"] = settings.batch_size / statistics.median(evals[label])
        rows[label]["train_clips_per_s"] = settings.batch_size / statistics.median(trains[label])

    result = {
        "device": device_description(device),
        "input": f"{settings.input_tdim} frames x {settings.input_fdim} mel bins, {settings.num_classes} classes",
        "batch_size": settings.batch_size,
        "repeats": settings.repeats,
        "rows": rows,
    }
    out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    (out_dir / "backbones_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"backbones — {result['input']}, batch {settings.batch_size} — {result['device']}")
    for column in ("backbone", "params (M)", "GFLOPs/clip", "eval clips/s", "train clips/s", "ToMe"):
        table.add_column(column, justify="right")
    for label, row in rows.items():
        table.add_row(
            label, f"{row['params'] / 1e6:.2f}", f"{row['gflops']:.2f}", f"{row['eval_clips_per_s']:.2f}",
            f"{row['train_clips_per_s']:.2f}", "yes" if row["token_merging"] else "no",
        )
    Console().print(table)
    return result
