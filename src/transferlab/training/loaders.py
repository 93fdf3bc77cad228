"""DataLoaders over in-memory tensors (uint8 images, or a frozen prefix's outputs): no
workers, no per-example transforms."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

#: Examples a loader takes: ImageTensors, or training.frozen_features.FeatureTensors.
Examples = Any


def _dataset(split: Examples) -> TensorDataset:
    return TensorDataset(*split.tensors())


def train_loader(
    split: Examples, batch_size: int, seed: int, min_steps_per_epoch: int = 1
) -> DataLoader:
    """Shuffled batches in a seeded order; an epoch has at least `min_steps_per_epoch` steps.

    Small target sets are cycled (fresh permutations) to fill the minimum, so every target
    size gets the same number of optimiser steps. A last batch of one example is dropped:
    BatchNorm cannot train on it.
    """
    size = min(batch_size, len(split))
    examples = max(len(split), size * min_steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(_dataset(split), num_samples=examples, generator=generator)
    return DataLoader(
        _dataset(split),
        batch_size=size,
        sampler=sampler,
        drop_last=examples % size == 1,
    )


def eval_loader(split: Examples, batch_size: int) -> DataLoader:
    """Batches in order, for validation and test."""
    return DataLoader(_dataset(split), batch_size=batch_size, shuffle=False)
