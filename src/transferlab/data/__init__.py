"""Datasets for transfer experiments: a registry of offline and torchvision datasets,
composable domain shifts, fixed stratified splits and nested target subsamples.

Examples live in memory as uint8 (N, C, H, W) tensors, or, for a large file-backed dataset,
are streamed from disk per batch (`streaming.ImageStream`); see :func:`build_splits`.
"""

from transferlab.data import builtin as _builtin  # noqa: F401  (registers datasets)
from transferlab.data import torchvision_sets as _torchvision_sets  # noqa: F401
from transferlab.data.build import POOL_PARTS, build_splits, clear_cache, source_pool
from transferlab.data.registry import available_datasets, register_dataset
from transferlab.data.shifts import available_shifts, register_shift
from transferlab.data.spec import describe, normalize_spec, validate_spec
from transferlab.data.splits import budget_split, stratified_subset, unlabelled_subset
from transferlab.data.tensors import DatasetSplits, ImageTensors

__all__ = [
    "POOL_PARTS",
    "DatasetSplits",
    "ImageTensors",
    "available_datasets",
    "available_shifts",
    "build_splits",
    "clear_cache",
    "describe",
    "normalize_spec",
    "register_dataset",
    "register_shift",
    "source_pool",
    "budget_split",
    "stratified_subset",
    "unlabelled_subset",
    "validate_spec",
]
