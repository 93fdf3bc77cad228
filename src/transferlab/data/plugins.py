"""Datasets of other packages, without editing this one: a loader named by import path in a
data preset (`name: my_package.datasets:paintings`), and packages that register datasets when
installed, through the `transferlab.datasets` entry point group:

    # the plugin's pyproject.toml
    [project.entry-points."transferlab.datasets"]
    paintings = "my_package.datasets"            # a module whose import registers datasets
    sketches = "my_package.datasets:sketches"    # or a loader, registered under this name

Both are found wherever a run looks a dataset up (`registry.get_dataset`), so they reach every
process that trains: joblib and submitit workers import the module themselves. A loader is
`fn(*, image_size, channels, **options) -> BaseData | BaseFiles`, as `register_dataset` takes.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from transferlab._helpers import first_line
from transferlab.errors import ConfigError

#: The entry point group packages register datasets under.
ENTRY_POINT_GROUP = "transferlab.datasets"
#: What separates module and loader in a dataset named by import path.
IMPORT_PATH_SEP = ":"

_loaded: set[str] = set()


def is_import_path(name: object) -> bool:
    """Whether a dataset name is an import path (`module:function`)."""
    return isinstance(name, str) and IMPORT_PATH_SEP in name


def import_loader(path: str) -> Any:
    """The callable at `module:function`; a one-line ConfigError when it cannot be had."""
    module, _, attr = path.partition(IMPORT_PATH_SEP)
    try:
        obj = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's module: one line
        raise ConfigError(
            f"dataset loader {path!r} cannot be imported: {first_line(exc)}"
        ) from None
    if not callable(obj):
        raise ConfigError(f"dataset loader {path!r} is {type(obj).__name__}, not a function")
    return obj


def load_entry_points() -> list[tuple[str, Any]]:
    """Import every installed plugin once per process; (name, loaded object) of those loaded
    now. A plugin that cannot be imported is a one-line ConfigError naming it."""
    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.value in _loaded:
            continue
        _loaded.add(point.value)
        try:
            found.append((point.name, point.load()))
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin's import: one line
            raise ConfigError(
                f"dataset plugin {point.name!r} ({point.value}) cannot be imported: "
                f"{first_line(exc)}"
            ) from None
    return found
