"""Shared test helpers: composing configs and running the commands with tiny models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from fast_ast.resolvers import CONF_DIR, register_resolvers

REPO = CONF_DIR.parent

# A model and corpus small enough for an end-to-end run in a few seconds on 2 CPU cores.
TINY_MODEL = (
    "model.backbone.embed_dim=32", "model.backbone.depth=1", "model.backbone.num_heads=2",
    "model.backbone.fstride=10", "model.backbone.tstride=10",  # AST's overlap: 2 + 12 x 9 tokens on 1 s clips
)
TINY_SYNTHETIC = ("data.train_size=48", "data.val_size=24", "data.test_size=24", "data.batch_size=16")
QUIET_RUN = (
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=none",
    "throughput.repeats=1",
    "throughput.batch_size=2",
)
TINY_TRAIN = TINY_MODEL + TINY_SYNTHETIC + QUIET_RUN


def assert_close_scaled(actual, expected, rel: float = 1e-5, msg: str | None = None) -> None:
    """actual == expected to `rel` of the values' scale: for two float32 computation orders (other kernels,
    other batch sizes) whose rounding differs by a few ulps of the largest value, on any CPU."""
    import torch

    scale = max(1.0, float(expected.detach().abs().max()))
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale, msg=msg)


def compose_config(config_name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Composes conf/<config_name>.yaml with overrides (no Hydra run directory involved)."""
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name=config_name, overrides=list(overrides))


def compose_train(run_dir: Path, *overrides: str) -> DictConfig:
    """conf/train.yaml with the tiny defaults, writing into run_dir; later overrides win."""
    return compose_config("train", [*TINY_TRAIN, f"paths.output_dir={run_dir}", *overrides])


def run_train(run_dir: Path, *overrides: str) -> dict:
    """fast_ast.train.train in this process; returns the results dict (also in run_dir/results.json)."""
    from fast_ast.train import train

    run_dir.mkdir(parents=True, exist_ok=True)
    return train(compose_train(run_dir, *overrides))


def run_module(module: str, *args: str, cwd: Path | None = None, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m module args...` in a subprocess (offline), output captured as text."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    process = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and process.returncode != 0:
        raise AssertionError(f"python -m {module} {' '.join(args)} failed ({process.returncode}):\n{process.stdout[-4000:]}\n{process.stderr[-6000:]}")
    return process
