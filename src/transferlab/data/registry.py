"""The registry of datasets by name; each entry loads a base dataset at a given size."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from transferlab.errors import choice_error

#: Marks a dataset option (or shift parameter) that has no default and must be given.
REQUIRED: Any = inspect.Parameter.empty

#: Keyword arguments every loader receives from build_splits rather than from the spec.
LOADER_ARGS = ("image_size", "channels")

#: Options that say where data lives, not what it is; left out of descriptions by default.
LOCATION_OPTIONS = ("root", "download")


@dataclass(frozen=True)
class BaseData:
    """A loaded base dataset: uint8 (N, C, H, W) images at the requested size and channels."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    classes: tuple[str, ...]
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None


@dataclass(frozen=True)
class BaseFiles:
    """A listed base dataset: one image file per example, read only when needed (decoded whole
    into memory, or streamed per batch: `data.streaming`). No pixel is read to list it."""

    train_files: tuple[str, ...]
    train_labels: torch.Tensor
    classes: tuple[str, ...]
    test_files: tuple[str, ...] | None = None
    test_labels: torch.Tensor | None = None


@dataclass(frozen=True)
class BaseArrays:
    """A base dataset as its raw uint8 arrays at their own size (what torchvision holds in
    memory: MNIST, USPS, SVHN, CIFAR), fitted to the run's size and channels only when read:
    whole (in memory) or per example by DataLoader workers (streamed), so an upsampled copy
    at a large `image_size` (CIFAR at 224 px: 8.6 GB) need never exist. ``layout`` says how
    the arrays are laid out: NHW, NCHW or NHWC."""

    train_images: np.ndarray
    train_labels: torch.Tensor
    classes: tuple[str, ...]
    test_images: np.ndarray | None = None
    test_labels: torch.Tensor | None = None
    layout: str = "NCHW"


#: Base datasets whose pixels are read only when needed (decoded whole, or streamed).
Readable = BaseFiles | BaseArrays
Loader = Callable[..., BaseData | BaseFiles | BaseArrays]
OptionCheck = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its loader, its options with defaults, and its split style."""

    name: str
    loader: Loader
    options: dict[str, Any]
    official_test: bool
    hidden_options: tuple[str, ...]
    check: OptionCheck | None
    content_options: tuple[str, ...] = ()


_DATASETS: dict[str, DatasetEntry] = {}
#: How each loader was registered, so a loader named by import path keeps its settings.
_SETTINGS: dict[Loader, dict[str, Any]] = {}


def keyword_options(fn: Callable[..., Any], skip: tuple[str, ...]) -> dict[str, Any]:
    """Keyword-only parameters of ``fn`` (minus ``skip``) with their defaults (or REQUIRED)."""
    params = inspect.signature(fn).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in skip
    }


def register_dataset(
    name: str,
    *,
    official_test: bool = False,
    hidden_options: tuple[str, ...] = LOCATION_OPTIONS,
    check: OptionCheck | None = None,
    content_options: tuple[str, ...] = (),
) -> Callable[[Loader], Loader]:
    """Register ``loader(*, image_size, channels, **options) -> BaseData | BaseFiles`` under
    ``name``: decoded images, or a listing of image files (read when needed, so a dataset larger
    than memory can be streamed).

    The loader's other keyword-only parameters are the dataset's spec options (their defaults
    are the spec defaults). ``official_test`` says the loader always returns an official test
    split (so ``test_fraction`` is not an option); ``hidden_options`` are left out of descriptions;
    ``check(options)`` validates option values cheaply (raising ConfigError) before any loading;
    ``content_options`` name the folders that define the data (a run is identified by what they
    hold, not by their path: see `transferlab.store.fingerprint`).
    """

    def decorator(loader: Loader) -> Loader:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        options = keyword_options(loader, LOADER_ARGS)
        _DATASETS[name] = DatasetEntry(
            name, loader, options, official_test, hidden_options, check, content_options
        )
        _SETTINGS[loader] = {
            "official_test": official_test,
            "hidden_options": hidden_options,
            "check": check,
            "content_options": content_options,
        }
        return loader

    return decorator


def _discover(name: object) -> None:
    """Datasets of other packages (`data.plugins`): every installed plugin's, then ``name`` as
    an import path (registered under that path, with its own registration's settings)."""
    from transferlab.data import plugins

    for point, loaded in plugins.load_entry_points():
        if callable(loaded) and loaded not in _SETTINGS and point not in _DATASETS:
            register_dataset(point)(loaded)
    if plugins.is_import_path(name) and name not in _DATASETS:
        assert isinstance(name, str)
        loader = plugins.import_loader(name)
        register_dataset(name, **_SETTINGS.get(loader, {}))(loader)


def available_datasets() -> list[str]:
    """Names of all registered datasets (installed plugins' included), sorted."""
    _discover(None)
    return sorted(_DATASETS)


def get_dataset(name: object) -> DatasetEntry:
    """The registry entry for ``name`` (a registered name, an installed plugin's, or a loader's
    import path `module:function`); ConfigError naming the valid choices if unknown."""
    if not isinstance(name, str) or name not in _DATASETS:
        _discover(name)
    if not isinstance(name, str) or name not in _DATASETS:
        raise choice_error("dataset (or a loader as module:function)", name, _DATASETS)
    return _DATASETS[name]
