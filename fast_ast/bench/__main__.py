"""`python -m fast_ast.bench suite=<name> [model/tome overrides]`: speed measurements (conf/bench.yaml).

Suites: throughput (eval clips/s of the configured model), and the suites registered in SUITES.
"""

from __future__ import annotations

import importlib

import hydra
from omegaconf import DictConfig

from fast_ast.config_keys import check_known_keys
from fast_ast.resolvers import CONF_DIR, register_resolvers

register_resolvers()

# suite name -> module with `run(cfg: DictConfig) -> dict`
SUITES = {
    "throughput": "fast_ast.bench.throughput",
    "tome": "fast_ast.bench.tome",
    "loader": "fast_ast.bench.loader",
    "hf": "fast_ast.bench.hf",
    "frontend": "fast_ast.bench.frontend",
    "backbones": "fast_ast.bench.backbones",
    "precision": "fast_ast.bench.precision",
    "hf_train": "fast_ast.bench.hf_train",
    "memory": "fast_ast.bench.memory",
}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="bench")
def main(cfg: DictConfig) -> None:
    check_known_keys(cfg, "bench")
    if cfg.suite not in SUITES:
        raise ValueError(f"suite={cfg.suite!r} is not a benchmark; choose one of {sorted(SUITES)}")
    importlib.import_module(SUITES[cfg.suite]).run(cfg)


if __name__ == "__main__":
    main()
