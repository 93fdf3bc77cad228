"""The default configs (the repository's `conf/`, shipped inside the wheel as the package
`transferlab.conf`): where they are, the presets of a group for code that needs one, and the
config folders a command line adds to Hydra's search path."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from transferlab.errors import choice_error

#: The folder of the shipped config groups.
CONF_DIR = Path(str(files("transferlab.conf"))).resolve()
#: The Hydra setting that adds config folders to the search path.
SEARCHPATH_KEY = "hydra.searchpath"


def is_searchpath(override: str) -> bool:
    """Whether a command-line override sets Hydra's search path (`hydra.searchpath=`, `++...`)."""
    return override.lstrip("+").split("=", 1)[0] == SEARCHPATH_KEY


def searchpath_entries(overrides: Sequence[str]) -> list[str]:
    """The folders (`file://...`, `pkg://...`) the `hydra.searchpath=[...]` overrides among
    `overrides` name, parsed as Hydra parses a list (a quoted entry keeps its commas), in order,
    each once; none when Hydra cannot parse them (Hydra then says why)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(
            [o for o in overrides if is_searchpath(o)]
        )
    except HydraException:
        return []
    values = [o.value() for o in parsed]
    entries = [str(e) for v in values for e in (v if isinstance(v, list) else [v]) if e]
    return list(dict.fromkeys(entries))


def _list_item(text: str) -> str:
    """A string as an item of an override's list: quoted when Hydra's grammar needs it."""
    if not any(c in text for c in ",[]{}()'\" \t"):
        return text
    return f"'{text}'" if "'" not in text else f'"{text}"'


def searchpath_override(entries: Sequence[str]) -> list[str]:
    """One `hydra.searchpath=[...]` override naming `entries` (none for no entries): Hydra
    searches only the folders of the first such override it is given."""
    unique = list(dict.fromkeys(entries))
    return [f"{SEARCHPATH_KEY}=[{','.join(_list_item(e) for e in unique)}]"] if unique else []


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
