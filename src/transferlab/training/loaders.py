"""DataLoaders over a stage's examples: in-memory tensors (uint8 images, or a frozen prefix's
outputs) are indexed in the training process, with no workers; a streamed dataset
(`data.streaming.ImageStream`) is decoded per example by `workers` DataLoader worker processes.

Either way a batch is uint8 images and labels in an order drawn from (seed, epoch) alone, and
the same examples give the same batch: decoding and shifts draw nothing at random, and
augmentation runs on the batch in the training process (`training/augment.py`), so the number
of workers changes the speed, never a number."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler, Sampler, TensorDataset

from transferlab.data.streaming import ImageStream, StreamDataset
from transferlab.training.seeding import Stream, epoch_seed

#: Examples a loader takes: ImageTensors, ImageStream, or training.frozen_features.FeatureTensors.
Examples = Any
#: Torch threads of a DataLoader worker: decoding is one image at a time; the workers together,
#: not threads within each, use the cores.
WORKER_THREADS = 1
#: How worker processes start: named, not inherited, because a run inside a joblib worker
#: inherits loky's default context, which cannot start a DataLoader worker. Fork on Linux (as
#: torch's own default there: no re-import), spawn elsewhere.
WORKER_START = "fork" if sys.platform.startswith("linux") else "spawn"


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(WORKER_THREADS)


def _loader(split: Examples, workers: int, **kwargs: Any) -> DataLoader:
    """A DataLoader over `split`: tensors in this process, a stream in `workers` processes
    (kept alive across epochs)."""
    if not isinstance(split, ImageStream):
        return DataLoader(TensorDataset(*split.tensors()), **kwargs)
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {
            "persistent_workers": True,
            "worker_init_fn": _one_thread,
            "multiprocessing_context": multiprocessing.get_context(WORKER_START),
        }
    return DataLoader(StreamDataset(split), num_workers=workers, **extra, **kwargs)


class EpochSampler(Sampler[int]):
    """`num_samples` indices of `size` examples an epoch, as RandomSampler draws them (fresh
    permutations, the last one cut short), in an order drawn from (seed, epoch) alone
    (`training/seeding.py`): a run resumed after epoch k trains epoch k + 1 on the batches the
    uninterrupted run did. Lightning sets the epoch before each one (`set_epoch`; under DDP
    through its sampler wrapper, which shards this order)."""

    def __init__(self, size: int, num_samples: int, seed: int) -> None:
        self.size, self.num_samples, self.seed = size, num_samples, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, Stream.ORDER))
        return iter(
            RandomSampler(range(self.size), num_samples=self.num_samples, generator=generator)
        )


def train_loader(
    split: Examples, batch_size: int, seed: int, min_steps_per_epoch: int = 1, workers: int = 0
) -> DataLoader:
    """Shuffled batches, each epoch in its own order drawn from (seed, epoch); an epoch has at
    least `min_steps_per_epoch` steps.

    Small target sets are cycled (fresh permutations) to fill the minimum, so every target
    size gets the same number of optimiser steps. A last batch of one example is dropped:
    BatchNorm cannot train on it.
    """
    size = min(batch_size, len(split))
    examples = max(len(split), size * min_steps_per_epoch)
    sampler = EpochSampler(len(split), examples, seed)
    return _loader(split, workers, batch_size=size, sampler=sampler, drop_last=examples % size == 1)


def eval_loader(split: Examples, batch_size: int, workers: int = 0) -> DataLoader:
    """Batches in order, for validation and test."""
    return _loader(split, workers, batch_size=batch_size, shuffle=False)
