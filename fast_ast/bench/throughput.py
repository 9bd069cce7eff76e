"""suite=throughput: eval clips/s of the configured model (waveform -> logits) after warm-up, median of repeats."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from fast_ast.device import resolve_device
from fast_ast.measure.timing import eval_throughput
from fast_ast.measure.tokens import tokens_per_layer
from fast_ast.modules.build import build_model
from fast_ast.precision import autocast, check_precision


def build_bench_model(cfg: DictConfig) -> torch.nn.Module:
    """The run's model, sized from the corpus config without loading any audio."""
    datamodule = instantiate(cfg.data)
    return build_model(cfg, datamodule).to(resolve_device(cfg.device)).eval()


def backbone_label(spec: dict) -> str:
    """e.g. "ast d192x4": the registry name and, where the spec has them, width x depth."""
    size = f" d{spec['embed_dim']}x{spec['depth']}" if "embed_dim" in spec and "depth" in spec else ""
    return spec["name"] + size


def run(cfg: DictConfig) -> dict:
    model = build_bench_model(cfg)
    device = resolve_device(cfg.device)
    example = torch.randn(cfg.batch_size, model.hparams.clip_samples, device=device) * 0.1
    check_precision(cfg.precision, device)
    with autocast(cfg.precision, device):
        result = eval_throughput(model, example, warmup=cfg.warmup, repeats=cfg.repeats)
    result["precision"] = cfg.precision
    result["tokens_per_layer"] = tokens_per_layer(model.backbone, model.frontend(example[:1]))
    table = Table(title=f"eval throughput — {result['device']}")
    for column in ("model", "tome", "tokens in", "tokens out", "clips/s"):
        table.add_column(column)
    table.add_row(
        backbone_label(OmegaConf.to_container(cfg.model.backbone, resolve=True)),
        str(OmegaConf.to_container(cfg.tome)),
        str(result["tokens_per_layer"][0]) if result["tokens_per_layer"] else "-",
        str(result["tokens_per_layer"][-1]) if result["tokens_per_layer"] else "-",
        f"{result['clips_per_s']:.2f}",
    )
    Console().print(table)
    return result
