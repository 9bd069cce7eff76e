"""What a Hydra sweep directory says about its jobs.

<sweep dir>/multirun.yaml (written by Hydra's basic sweeper, whatever the launcher) holds the sweep's
arguments, e.g. ["tome.r=0,8,16", "kd.lambda=0.1,1.0", "trainer.max_epochs=3"]; job n runs in
<sweep dir>/<n> with one value of each swept key, e.g. ["tome.r=8", "kd.lambda=0.1", "trainer.max_epochs=3"].
"""

from __future__ import annotations

from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

SWEEP_CONFIG = "multirun.yaml"


def sweep_arguments(sweep_dir: str | Path) -> list[str]:
    """The sweep's overrides: hydra.sweeper.params (if any), then the command line's."""
    path = Path(sweep_dir) / SWEEP_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a Hydra sweep directory (no {SWEEP_CONFIG})")
    hydra_cfg = OmegaConf.load(path).hydra
    params = hydra_cfg.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
    return [f"{key}={value}" for key, value in params.items()] + list(
        OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    )


def swept_keys(arguments: list[str]) -> list[str]:
    """Keys given more than one value, e.g. ["tome.r", "kd.lambda"] (as written: "+key" stays "+key")."""
    return [o.get_key_element() for o in OverridesParser.create().parse_overrides(arguments) if o.is_sweep_override()]


def job_overrides(arguments: list[str]) -> list[list[str]]:
    """Each job's overrides, index = job number (the basic sweeper's order, used by every launcher)."""
    return BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(arguments), None)[0]


def override_key(override: str) -> str:
    """"tome.r=16" -> "tome.r"."""
    return override.split("=", 1)[0]


def override_value(override: str) -> str:
    """"tome.r=16" -> "16"."""
    return override.split("=", 1)[1] if "=" in override else ""


def swept_overrides(overrides: list[str], keys: list[str]) -> list[str]:
    """The overrides of `keys` among a job's overrides, in the job's order."""
    return [o for o in overrides if override_key(o) in keys]
