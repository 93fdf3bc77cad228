"""torchvision datasets (read from disk, optionally downloaded) and the user's image folders.

The loaders call torchvision normally; a missing or unreadable file becomes a one-line
ConfigError naming the dataset, the path looked at, and how to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torchvision.datasets as tvd

from transferlab._helpers import first_line
from transferlab.data.registry import BaseArrays, BaseFiles, register_dataset
from transferlab.errors import ConfigError

#: Where torchvision datasets are looked for unless the spec sets ``root``.
DEFAULT_DATA_ROOT = "data"
DIGIT_CLASSES = tuple(str(d) for d in range(10))


def _open(name: str, looked_at: str, download: bool, make: Callable[[], Any]) -> Any:
    """Construct a torchvision dataset, turning its failures into one-line ConfigErrors."""
    try:
        return make()
    except (RuntimeError, OSError, ValueError) as exc:
        if download:
            raise ConfigError(
                f"{name}: could not download or read the files at {looked_at}: {first_line(exc)}"
            ) from None
        raise ConfigError(
            f"{name}: dataset files not found (or corrupted) at {looked_at}; "
            f"set download=true or root=<folder holding them>"
        ) from None


def _open_splits(
    name: str, download: bool, looked_at: dict[Any, str], make: Callable[[Any], Any]
) -> list[Any]:
    """Each split of a torchvision dataset; ``looked_at`` maps a split argument (``train=``
    flag or split name) to the path reported if its files are missing."""
    return [
        _open(name, where, download, lambda s=split: make(s)) for split, where in looked_at.items()
    ]


def _as_base(
    train: tuple[Any, Any], test: tuple[Any, Any], classes: tuple[str, ...], layout: str
) -> BaseArrays:
    """BaseArrays from torchvision's (images, labels) pairs, images kept raw at their own size
    (fitted to the run's size when read: whole, or per example when streamed)."""

    def images(raw: Any) -> np.ndarray:
        return np.asarray(raw, dtype=np.uint8)

    def labels(raw: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(raw), dtype=torch.long)

    return BaseArrays(
        images(train[0]), labels(train[1]), classes, images(test[0]), labels(test[1]), layout
    )


def _root(root: str) -> str:
    return os.path.abspath(os.path.expanduser(str(root)))


def _mnist_family(name: str, cls: type[tvd.MNIST]) -> None:
    @register_dataset(name, official_test=True)
    def load(
        *, image_size: int, channels: int, root: str = DEFAULT_DATA_ROOT, download: bool = False
    ) -> BaseArrays:
        path = _root(root)
        looked_at = os.path.join(path, cls.__name__, "raw")
        sets = _open_splits(
            name,
            download,
            {True: looked_at, False: looked_at},
            lambda t: cls(path, train=t, download=download),
        )
        pairs = [(s.data, s.targets) for s in sets]
        return _as_base(*pairs, tuple(cls.classes), "NHW")

    load.__doc__ = f"torchvision {cls.__name__} (official train/test split)."


_mnist_family("mnist", tvd.MNIST)
_mnist_family("fashion_mnist", tvd.FashionMNIST)
_mnist_family("kmnist", tvd.KMNIST)


@register_dataset("usps", official_test=True)
def usps(
    *, image_size: int, channels: int, root: str = DEFAULT_DATA_ROOT, download: bool = False
) -> BaseArrays:
    """torchvision USPS, 16x16 digits from bz2 libsvm files (official train/test split)."""
    path = _root(root)
    files = {
        t: os.path.join(path, tvd.USPS.split_list["train" if t else "test"][1])
        for t in (True, False)
    }
    sets = _open_splits(
        "usps", download, files, lambda t: tvd.USPS(path, train=t, download=download)
    )
    pairs = [(s.data, s.targets) for s in sets]
    return _as_base(*pairs, DIGIT_CLASSES, "NHW")


@register_dataset("svhn", official_test=True)
def svhn(
    *, image_size: int, channels: int, root: str = DEFAULT_DATA_ROOT, download: bool = False
) -> BaseArrays:
    """torchvision SVHN cropped digits, .mat files (official train/test split; no 'extra')."""
    path = _root(root)
    files = {s: os.path.join(path, tvd.SVHN.split_list[s][1]) for s in ("train", "test")}
    sets = _open_splits(
        "svhn", download, files, lambda s: tvd.SVHN(path, split=s, download=download)
    )
    pairs = [(s.data, s.labels) for s in sets]
    return _as_base(*pairs, DIGIT_CLASSES, "NCHW")


def _cifar(name: str, cls: type[tvd.CIFAR10]) -> None:
    @register_dataset(name, official_test=True)
    def load(
        *, image_size: int, channels: int, root: str = DEFAULT_DATA_ROOT, download: bool = False
    ) -> BaseArrays:
        path = _root(root)
        looked_at = os.path.join(path, cls.base_folder)
        sets = _open_splits(
            name,
            download,
            {True: looked_at, False: looked_at},
            lambda t: cls(path, train=t, download=download),
        )
        pairs = [(s.data, s.targets) for s in sets]
        return _as_base(*pairs, tuple(sets[0].classes), "NHWC")

    load.__doc__ = f"torchvision {cls.__name__} python pickles (official train/test split)."


_cifar("cifar10", tvd.CIFAR10)
_cifar("cifar100", tvd.CIFAR100)


def _list_folder(root: str) -> tuple[tuple[str, ...], torch.Tensor, tuple[str, ...]]:
    """The image files of an ImageFolder-layout directory (one subfolder per class), their
    labels and the class names; nothing is decoded (`data.streaming` reads them)."""
    path = _root(root)
    try:
        folder = tvd.ImageFolder(path)
    except (RuntimeError, OSError) as exc:
        raise ConfigError(f"image_folder: cannot read {path}: {first_line(exc)}") from None
    if not folder.samples:
        raise ConfigError(f"image_folder: no images found under {path}")
    files = tuple(file for file, _ in folder.samples)
    return files, torch.tensor(folder.targets, dtype=torch.long), tuple(folder.classes)


@register_dataset("image_folder", hidden_options=(), content_options=("root", "test_root"))
def image_folder(
    *, image_size: int, channels: int, root: str, test_root: str | None = None
) -> BaseFiles:
    """The user's images, one subfolder per class (torchvision ImageFolder layout); the test
    set is ``test_root`` (same class folders) if given, else a held-out ``test_fraction``.
    Listed only: decoded into memory or streamed per batch by `data_mode`."""
    files, labels, classes = _list_folder(root)
    if test_root is None:
        return BaseFiles(files, labels, classes)
    test_files, test_labels, test_classes = _list_folder(test_root)
    if test_classes != classes:
        raise ConfigError(
            f"image_folder: class folders of test_root {list(test_classes)} differ from "
            f"those of root {list(classes)}"
        )
    return BaseFiles(files, labels, classes, test_files, test_labels)
