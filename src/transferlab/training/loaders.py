"""DataLoaders over in-memory uint8 tensors: no workers, no per-example transforms."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from transferlab.data import ImageTensors


def _dataset(split: ImageTensors) -> TensorDataset:
    return TensorDataset(split.images, split.labels)


def train_loader(split: ImageTensors, batch_size: int, seed: int) -> DataLoader:
    """Shuffled batches in a seeded order.

    A last batch of one example is dropped: BatchNorm cannot train on it.
    """
    size = min(batch_size, len(split))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        _dataset(split),
        batch_size=size,
        shuffle=True,
        drop_last=len(split) % size == 1,
        generator=generator,
    )


def eval_loader(split: ImageTensors, batch_size: int) -> DataLoader:
    """Batches in order, for validation and test."""
    return DataLoader(_dataset(split), batch_size=batch_size, shuffle=False)
