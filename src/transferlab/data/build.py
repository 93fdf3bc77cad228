"""Building the train pool / validation / test splits of a dataset spec, cached in-process.

The base dataset is split first (fixed by its options and ``split_seed``), then the spec's
shifts are applied to each split, so two views of one base dataset (e.g. ``digits`` and
``digits`` rotated) share one split and a source's training pool never holds a target's test
example. The training pool is further split into a source part and a target part (``pool``):
a target stage draws its labelled budget (training and budget validation) from the target part
only, and a source that is a view of the target's base dataset trains on the source part only,
so it never sees the target's examples (`source_pool`). ``origin`` records each example's index
in the base dataset.

A file-backed base dataset (`registry.BaseFiles`: an image folder) or an array-backed one
(`registry.BaseArrays`: torchvision's, raw at their own size) is fitted into memory whole or
streamed per batch (`data.streaming`), by `data_mode`: `auto` streams it when its images at
the run's size would take more than `stream_above_mb`. Both give the same examples, splits and
numbers; only where the pixels wait differs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from transferlab.choices import CHANNEL_CHOICES, DATA_MODES
from transferlab.data import checks
from transferlab.data.registry import BaseArrays, BaseData, BaseFiles, Readable, get_dataset
from transferlab.data.shifts import View, apply_shift
from transferlab.data.spec import describe_normalized, normalize_spec
from transferlab.data.splits import stratified_holdout
from transferlab.data.streaming import ArrayReader, FileReader, ImageStream, Reader
from transferlab.data.tensors import DatasetSplits, ImageTensors
from transferlab.errors import ConfigError

#: Loaded base datasets kept in memory (a sweep alternates between few of them).
BASE_CACHE_SIZE = 4
#: Built (split and shifted) dataset views kept in memory.
SPLITS_CACHE_SIZE = 8
SPLIT_NAMES = ("train", "val", "test")
#: Which part of the base dataset's training pool a stage draws from: all of it, the part kept
#: for sources of the same base dataset, or the part kept for targets.
POOL_PARTS = ("all", "source", "target")
#: `data_mode=auto` streams a file-backed dataset whose decoded images exceed this many MB.
DEFAULT_STREAM_ABOVE_MB = 1024
BYTES_PER_MB = 2**20


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _check_base(images: torch.Tensor, labels: torch.Tensor, name: str, what: str) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
        raise ValueError(
            f"loader of {name} returned bad {what} tensors: "
            f"{images.dtype} {tuple(images.shape)}, {len(labels)} labels"
        )


def _check_readable(base: Readable, name: str) -> None:
    """A listing or uint8 raw arrays with one label per example."""
    for which in ("train", "test"):
        examples, labels = _parts(base, which)
        if labels is None:
            continue
        dtype = getattr(examples, "dtype", np.uint8)  # a listing has none
        if len(examples) != len(labels) or labels.ndim != 1 or dtype != np.uint8:
            raise ValueError(
                f"loader of {name} returned {len(examples)} {which} examples ({dtype}) and "
                f"labels of shape {tuple(labels.shape)}"
            )
        if isinstance(base, BaseArrays) and examples.ndim != len(base.layout):
            raise ValueError(
                f"loader of {name} returned {which} images of shape {tuple(examples.shape)} "
                f"for layout {base.layout}"
            )


def _parts(base: Readable, which: str) -> tuple[Any, torch.Tensor | None]:
    """The train or test examples (files or raw arrays) of a readable base, and its labels."""
    if isinstance(base, BaseFiles):
        if which == "train":
            return base.train_files, base.train_labels
        return base.test_files, base.test_labels
    if which == "train":
        return base.train_images, base.train_labels
    return base.test_images, base.test_labels


def _reader(base: Readable, which: str, image_size: int, channels: int) -> Reader:
    """What reads the train or test examples of a file-backed or array-backed base."""
    examples, _ = _parts(base, which)
    if isinstance(base, BaseFiles):
        return FileReader(examples or (), image_size, channels)
    return ArrayReader(examples, base.layout, image_size, channels)


@lru_cache(maxsize=BASE_CACHE_SIZE)
def _load_base(key: str, image_size: int, channels: int) -> BaseData | Readable:
    """Load a base dataset (``key`` is the canonical JSON of its name and loader options): its
    images, for a file-backed dataset its listing, for an array-backed one its raw arrays."""
    request = json.loads(key)
    entry = get_dataset(request["name"])
    base = entry.loader(image_size=image_size, channels=channels, **request["options"])
    if isinstance(base, BaseFiles | BaseArrays):
        _check_readable(base, entry.name)
        return base
    _check_base(base.train_images, base.train_labels, entry.name, "train")
    if base.test_images is not None and base.test_labels is not None:
        _check_base(base.test_images, base.test_labels, entry.name, "test")
    return base


@lru_cache(maxsize=BASE_CACHE_SIZE)
def _decoded(key: str, image_size: int, channels: int, which: str) -> torch.Tensor:
    """The ``which`` ("train" or "test") images of a file- or array-backed base dataset, fitted
    whole to the size and channels."""
    base = _load_base(key, image_size, channels)
    assert isinstance(base, BaseFiles | BaseArrays)
    return _reader(base, which, image_size, channels).read_all()


def _examples(
    key: str, image_size: int, channels: int, which: str, offset: int, stream: bool
) -> ImageTensors | ImageStream:
    """The train or test examples of a base dataset, origins from ``offset``: in memory, or
    (a file- or array-backed dataset with ``stream``) as a stream that reads each when asked."""
    base = _load_base(key, image_size, channels)
    labels = (base.train_labels if which == "train" else base.test_labels).long()
    origin = torch.arange(len(labels)) + offset
    if isinstance(base, BaseData):
        images = base.train_images if which == "train" else base.test_images
        return ImageTensors(images, labels, origin)
    if not stream:
        return ImageTensors(_decoded(key, image_size, channels, which), labels, origin)
    reader = _reader(base, which, image_size, channels)
    return ImageStream(reader, torch.arange(len(labels)), labels, origin)


def _has_test(base: BaseData | Readable) -> bool:
    if isinstance(base, BaseFiles):
        return base.test_files is not None and base.test_labels is not None
    return base.test_images is not None and base.test_labels is not None


def base_name(spec: Mapping[str, Any]) -> str:
    """The base dataset a spec is a view of: its registered name with the loader options that
    choose its examples (an `image_folder`'s folders; not a location such as a torchvision
    root). Views of one base dataset share its split and its examples; two folders do not."""
    norm = normalize_spec(spec)
    entry = get_dataset(norm["name"])
    chosen = {k: norm[k] for k in entry.options if k not in entry.hidden_options}
    return _canonical({"name": entry.name, "options": chosen})


def source_pool(source: Mapping[str, Any], target: Mapping[str, Any]) -> str:
    """The part of its training pool a source trains on: the source part when it is a view of
    the target's base dataset (disjoint from every example a target can draw), else all of it."""
    return "source" if base_name(source) == base_name(target) else "all"


def _pool_part(
    train: ImageTensors, pool: str, target_share: float | None, split_seed: int, tag: str
) -> ImageTensors:
    """The ``pool`` part of a training pool: class-stratified, fixed by ``split_seed``; the
    target part holds ``round(target_share * n_c)`` examples of each class, the source part the
    rest."""
    if pool == "all":
        return train
    if target_share is None:
        raise ConfigError(f"pool={pool!r} needs target_pool_share, got None")
    source, target = stratified_holdout(train.labels, target_share, split_seed, f"pool:{tag}")
    return train.subset(target if pool == "target" else source)


def _loader_key(norm: Mapping[str, Any]) -> str:
    entry = get_dataset(norm["name"])
    return _canonical({"name": entry.name, "options": {k: norm[k] for k in entry.options}})


def _base_splits(
    norm: Mapping[str, Any],
    image_size: int,
    channels: int,
    split_seed: int,
    part: tuple[str, float | None] = ("all", None),
    stream: bool = False,
) -> tuple[dict[str, Any], tuple[str, ...], int | None]:
    """Split the (unshifted) base dataset: train pool (its ``pool`` part), val and test, with
    origins; in memory, or streamed when the dataset is file-backed and ``stream``."""
    key = _loader_key(norm)
    base = _load_base(key, image_size, channels)
    everything = _examples(key, image_size, channels, "train", 0, stream)
    labels = everything.labels
    tag = norm["name"]  # the split is fixed by the base dataset's name and split_seed
    if _has_test(base):
        offset: int | None = len(labels)
        test = _examples(key, image_size, channels, "test", len(labels), stream)
        pool = everything
    else:
        offset = None
        kept, held = stratified_holdout(labels, norm["test_fraction"], split_seed, f"test:{tag}")
        pool, test = everything.subset(kept), everything.subset(held)
    kept, held = stratified_holdout(pool.labels, norm["val_fraction"], split_seed, f"val:{tag}")
    train = _pool_part(pool.subset(kept), *part, split_seed, tag)
    parts = {"train": train, "val": pool.subset(held), "test": test}
    return parts, tuple(base.classes), offset


@lru_cache(maxsize=SPLITS_CACHE_SIZE)
def _build(
    key: str,
    image_size: int,
    channels: int,
    split_seed: int,
    pool: str,
    target_share: float | None,
    stream: bool,
) -> DatasetSplits:
    norm = json.loads(key)
    parts, classes, offset = _base_splits(
        norm, image_size, channels, split_seed, (pool, target_share), stream
    )
    out: dict[str, Any] = {}
    out_classes = classes
    for split in SPLIT_NAMES:
        view = View(parts[split], classes, split)
        for shift in norm["shifts"]:
            params = {k: v for k, v in shift.items() if k != "name"}
            view = apply_shift(view, shift["name"], params)
        out[split] = view.data
        out_classes = view.classes
    return DatasetSplits(
        train=out["train"],
        val=out["val"],
        test=out["test"],
        classes=out_classes,
        description=describe_normalized(norm),
        official_test_offset=offset,
    )


def build_splits(
    spec: Mapping[str, Any],
    *,
    image_size: int,
    channels: int = 3,
    split_seed: int = 0,
    pool: str = "all",
    target_share: float | None = None,
    data_mode: str = "memory",
    stream_above_mb: float = DEFAULT_STREAM_ABOVE_MB,
) -> DatasetSplits:
    """Load, split and shift the dataset ``spec`` describes, at ``image_size`` and ``channels``.

    ``pool`` chooses the part of the training pool in ``train`` (`POOL_PARTS`; the target part
    holds ``target_share`` of each class). Validation and test splits are the same for every
    part. ``data_mode`` (`DATA_MODES`) says whether a file-backed dataset is decoded into memory
    or streamed (`auto`: streamed above ``stream_above_mb`` of decoded images); other datasets
    are in memory. Results are cached in-process (keyed by the normalised spec, size, channels,
    split_seed, part and mode): the returned tensors are shared, so callers must not modify
    them.
    """
    checks.integer("build_splits", "image_size", image_size, low=1)
    checks.integer("build_splits", "split_seed", split_seed)
    if channels not in CHANNEL_CHOICES:
        raise ConfigError(f"channels must be one of {CHANNEL_CHOICES}, got {channels!r}")
    if pool not in POOL_PARTS:
        raise ConfigError(f"pool must be one of {', '.join(POOL_PARTS)}, got {pool!r}")
    checks.choice("build_splits", "data_mode", data_mode, DATA_MODES)
    share = None if pool == "all" else target_share
    norm = normalize_spec(spec)
    stream = streams(norm, image_size, channels, data_mode, stream_above_mb)
    return _build(_canonical(norm), image_size, channels, split_seed, pool, share, stream)


def streams(
    norm: Mapping[str, Any], image_size: int, channels: int, data_mode: str, above_mb: float
) -> bool:
    """Whether a normalised spec's examples are streamed: a file- or array-backed dataset under
    `data_mode=stream`, or under `auto` when its images fitted to the run's size would exceed
    ``above_mb`` (the listing or the raw arrays are read, no image is fitted)."""
    if data_mode == "memory":
        return False
    base = _load_base(_loader_key(norm), image_size, channels)
    if not isinstance(base, BaseFiles | BaseArrays):
        return False
    count = len(base.train_labels) + len(base.test_labels if base.test_labels is not None else ())
    decoded_mb = count * channels * image_size * image_size / BYTES_PER_MB
    return data_mode == "stream" or decoded_mb > above_mb


def clear_cache() -> None:
    """Drop all cached base datasets and built splits (frees memory; tests use it)."""
    _build.cache_clear()
    _decoded.cache_clear()
    _load_base.cache_clear()
