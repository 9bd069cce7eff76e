"""Where conf/ is, and the OmegaConf resolvers used by conf/ (registered when fast_ast's commands are imported)."""

from __future__ import annotations

import secrets
from pathlib import Path

from omegaconf import OmegaConf

# conf/ at the repository root (the package is installed editable, as `make` does).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def register_resolvers() -> None:
    # Cached like Hydra's ${now:}: one value per composed config, so every job of a sweep agrees.
    OmegaConf.register_new_resolver("fast_ast.uid", lambda: secrets.token_hex(3), use_cache=True, replace=True)
