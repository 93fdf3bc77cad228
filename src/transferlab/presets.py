"""The default configs (the repository's `conf/`, shipped inside the wheel as the package
`transferlab.conf`): where they are, and the presets of a group for code that needs one."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from transferlab.errors import choice_error

#: The folder of the shipped config groups.
CONF_DIR = Path(str(files("transferlab.conf"))).resolve()


def preset_names(group: str) -> list[str]:
    """The shipped presets of config group `group` (e.g. `optimizer`: adamw, sgd)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def load_preset(group: str, name: str) -> DictConfig | None:
    """Shipped preset `name` of `group`, unresolved (None for an empty one: `scheduler=none`);
    a one-line ConfigError naming the choices for a name the group lacks."""
    if name not in preset_names(group):
        raise choice_error(f"{group} preset", name, preset_names(group))
    node = OmegaConf.load(CONF_DIR / group / f"{name}.yaml")
    return node if isinstance(node, DictConfig) and len(node) else None
