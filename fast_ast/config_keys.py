"""Every command refuses config keys it does not read (a typo, or a '+key=value' override Hydra added).

Hydra rejects overrides of keys that do not exist, but `+key=value` / `++key=value` add them, and nothing
would read them. The keys a command reads are those of its primary config conf/<command>.yaml and of the
config groups in its defaults list. Checked here: top-level keys, and the keys of the primary config's own
plain settings nodes (e.g. `throughput`). Group nodes (`data`, `model`, `trainer`, ...) are passed whole to
constructors, which refuse unknown arguments themselves.
"""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

from fast_ast.resolvers import CONF_DIR


def default_groups(defaults: ListConfig | None) -> set[str]:
    """Top-level names the defaults list composes: 'data' for `- data: synthetic`, 'model' for `model/backbone`."""
    groups = set()
    for entry in defaults or []:
        names = [entry] if isinstance(entry, str) else list(entry.keys())
        for name in names:
            name = str(name).removeprefix("override ").lstrip("/")
            if name != "_self_":
                groups.add(name.split("/")[0].split("@")[0])
    return groups


def unknown_keys(cfg: DictConfig, command: str) -> list[str]:
    """Dotted keys of `cfg` that conf/<command>.yaml and its groups do not define."""
    primary = OmegaConf.load(CONF_DIR / f"{command}.yaml")
    groups = default_groups(primary.get("defaults")) | {"hydra"}
    known = (set(primary.keys()) - {"defaults"}) | groups
    unknown = [str(key) for key in cfg.keys() if key not in known]
    for key in primary.keys():
        node = primary._get_node(key)
        if key in groups or key == "defaults" or not isinstance(node, DictConfig) or "_target_" in node:
            continue
        given = OmegaConf.select(cfg, str(key))
        if isinstance(given, DictConfig):
            unknown += [f"{key}.{inner}" for inner in given.keys() if inner not in node]
    return unknown


def check_known_keys(cfg: DictConfig, command: str) -> None:
    """Raises ValueError naming every key `command` would silently ignore."""
    unknown = unknown_keys(cfg, command)
    if unknown:
        raise ValueError(
            f"fast_ast.{command} does not read the config key(s) {', '.join(unknown)} (added with '+' or '++'?): "
            f"remove them; the keys it reads are in conf/{command}.yaml and its groups"
        )
