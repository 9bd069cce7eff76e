"""suite=memory: peak training memory per clip, by precision and ToMe r, and the largest batch for a budget.

    python -m fast_ast.bench suite=memory model/backbone=base384 data.clip_seconds=10.24 \
        data.features.target_length=1024 'memory_suite.tome_r=[0,101]' 'memory_suite.batch_sizes=[1,2]'

One training step as training runs it (frontend features, the backbone under `autocast(precision)`, the
label loss, backward, the configured optimizer's step; a second step so the optimizer state exists) at each
batch size. Peak memory:
- GPU: torch.cuda.max_memory_allocated after reset_peak_memory_stats (tensors only, this process);
- CPU: the peak resident set size (ru_maxrss) of a fresh subprocess per measurement, which also counts the
  interpreter, the libraries and the allocator's slack.
A least-squares line over the batch sizes splits it into the fixed part (weights, gradients, optimizer
state, libraries: the intercept) and the per-clip part (activations kept for backward: the slope);
`max_batch` = floor((budget - intercept) / slope). Results: <run dir>/memory_bench.json.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from fast_ast.bench.throughput import build_bench_model
from fast_ast.device import device_description, resolve_device
from fast_ast.modules.optim import build_optimizer
from fast_ast.precision import autocast, check_precision

GB = 1024**3


def training_steps(cfg: DictConfig, precision: str, r: int, batch_size: int, steps: int = 2) -> torch.nn.Module:
    """Builds the configured model with ToMe r and runs `steps` training steps on a batch of random clips."""
    run_cfg = cfg.copy()
    run_cfg.tome.r = r
    device = resolve_device(cfg.device)
    model = build_bench_model(run_cfg).train()
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], OmegaConf.to_container(cfg.model.optim, resolve=True))
    audio = torch.randn(batch_size, model.hparams.clip_samples, device=device) * 0.1
    targets = torch.randint(0, model.num_classes, (batch_size,), device=device)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision, device):
            logits = model.backbone(model.train_features({"audio": audio, "view_seed": torch.arange(batch_size)}))
            loss = model.label_loss(logits, model.target_matrix(targets))
        loss.backward()
        optimizer.step()
    return model


def peak_bytes(cfg: DictConfig, precision: str, r: int, batch_size: int) -> int:
    """Peak memory of training_steps: CUDA allocator peak on a GPU, a fresh subprocess's peak RSS on the CPU."""
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        model = training_steps(cfg, precision, r, batch_size)
        peak = torch.cuda.max_memory_allocated(device)
        del model
        return peak
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "bench.yaml"
        OmegaConf.save(cfg, config, resolve=True)
        process = subprocess.run(
            [sys.executable, "-m", "fast_ast.bench.memory", str(config), precision, str(r), str(batch_size)],
            capture_output=True, text=True,
        )
    if process.returncode != 0:
        raise RuntimeError(f"memory probe (precision={precision}, r={r}, batch {batch_size}) failed:\n{process.stderr[-3000:]}")
    return int(process.stdout.strip().splitlines()[-1])


def line_fit(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of ys over xs."""
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def run(cfg: DictConfig) -> dict:
    settings = cfg.memory_suite
    device = resolve_device(cfg.device)
    batch_sizes = sorted(set(settings.batch_sizes))
    if len(batch_sizes) < 2:
        raise ValueError(f"memory_suite.batch_sizes={list(settings.batch_sizes)}: need two or more sizes (the per-clip figure is a slope)")
    for precision in settings.precisions:
        check_precision(precision, device, "memory_suite.precisions")
    rows = []
    for precision in settings.precisions:
        for r in dict.fromkeys(settings.tome_r):
            peaks = [peak_bytes(cfg, precision, r, batch) for batch in batch_sizes]
            intercept, slope = line_fit(batch_sizes, peaks)
            rows.append({
                "precision": precision,
                "r": r,
                "peak_gb": {str(batch): peak / GB for batch, peak in zip(batch_sizes, peaks)},
                "fixed_gb": intercept / GB,
                "per_clip_gb": slope / GB,
                "max_batch": math.floor((settings.budget_gb * GB - intercept) / slope) if slope > 0 else None,
            })
    backbone_cfg = cfg.model.backbone
    result = {
        "device": device_description(device),
        "measure": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "peak RSS of a fresh process (ru_maxrss)",
        "backbone": f"embed_dim {backbone_cfg.embed_dim}, depth {backbone_cfg.depth}, heads {backbone_cfg.num_heads}",
        "frames": int(cfg.data.features.target_length),
        "batch_sizes": batch_sizes,
        "budget_gb": settings.budget_gb,
        "rows": rows,
    }
    report(result)
    out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "memory_bench.json").write_text(json.dumps(result, indent=2))
    Console().print(f"wrote {out_dir / 'memory_bench.json'}")
    return result


def report(result: dict) -> None:
    table = Table(title=(
        f"training memory — {result['backbone']}, {result['frames']} frames — {result['device']}, {result['measure']}"
    ))
    for column in ("precision", "r", *(f"peak GB @ {b}" for b in result["batch_sizes"]), "fixed GB", "GB / clip", f"max batch in {result['budget_gb']} GB"):
        table.add_column(column, justify="right")
    for row in result["rows"]:
        table.add_row(
            row["precision"], str(row["r"]), *(f"{row['peak_gb'][str(b)]:.2f}" for b in result["batch_sizes"]),
            f"{row['fixed_gb']:.2f}", f"{row['per_clip_gb']:.3f}", str(row["max_batch"]),
        )
    Console(width=160).print(table)


if __name__ == "__main__":  # the CPU probe: python -m fast_ast.bench.memory <bench.yaml> <precision> <r> <batch> -> peak RSS bytes
    config, precision, r, batch = sys.argv[1:5]
    training_steps(OmegaConf.load(config), precision, int(r), int(batch))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux reports KiB
