"""Where conf/ is, and the OmegaConf resolvers used by conf/ (registered when fast_ast's commands are imported)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hydra.types import RunMode
from omegaconf import OmegaConf

# conf/ at the repository root (the package is installed editable, as `make` does).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def sweep_name(mode: RunMode, sweep_dir: str) -> str | None:
    """The sweep directory's name in a sweep job (the W&B group), else None."""
    return Path(sweep_dir).name if mode == RunMode.MULTIRUN else None


def run_name(mode: RunMode, sweep_dir: str, overrides: list[str]) -> str | None:
    """A sweep job's swept overrides, e.g. "tome.r=16,kd.lambda=0.1"; a single run's overrides; None if none."""
    from fast_ast.cluster.sweep import swept_keys, swept_overrides, sweep_arguments

    overrides = list(overrides)
    if mode == RunMode.MULTIRUN:
        overrides = swept_overrides(overrides, swept_keys(sweep_arguments(sweep_dir))) or overrides
    return ",".join(overrides) or None


def wandb_offline() -> bool:
    """True when no W&B API key is configured (WANDB_API_KEY unset and no ~/.netrc entry for the W&B host):
    runs are then recorded offline, to upload later with `wandb sync`. WANDB_MODE, when set, decides instead."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return False
    from wandb.sdk.lib.wbauth import read_netrc_auth

    return read_netrc_auth(host=os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")) is None


def register_resolvers() -> None:
    # Cached like Hydra's ${now:}: one value per composed config, so every job of a sweep agrees.
    OmegaConf.register_new_resolver("fast_ast.uid", lambda: secrets.token_hex(3), use_cache=True, replace=True)
    OmegaConf.register_new_resolver("fast_ast.sweep_name", sweep_name, replace=True)
    OmegaConf.register_new_resolver("fast_ast.run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("fast_ast.wandb_offline", wandb_offline, replace=True)
