"""Where a run's tensors live and in which memory layout (the GPU path).

* `data_on_device`: a run on one GPU keeps its in-memory splits (uint8 images, or a frozen
  prefix's outputs) on that GPU, so a batch is an index into device memory instead of a
  host-to-device copy per step. With several devices (DDP) every process copies its own
  batches: the data stay on the host, where each process's sampler indexes them.
* `channels_last`: convolutions on a GPU run fastest (bf16 tensor cores) with NHWC tensors.
  `auto` turns it on for a model with 2-d convolutions on a GPU, never on the CPU.

Neither changes what is computed, only where and in which layout (float rounding aside, as
`threads`): both are left out of the run identity.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import lightning as L
import torch
from torch import nn

from transferlab.data import DatasetSplits


def data_device(trainer: L.Trainer, data_on_device: bool) -> torch.device | None:
    """The GPU a single-device run keeps its data on, or None (data stay on the host)."""
    device = trainer.strategy.root_device
    if not data_on_device or device.type == "cpu" or trainer.num_devices * trainer.num_nodes > 1:
        return None
    return device


def place_data(
    splits: DatasetSplits, train_split: Any, device: torch.device | None
) -> tuple[DatasetSplits, Any]:
    """The examples a run reads (training subset, validation, test) moved to `device`; the
    unused training pool stays where it is."""
    if device is None:
        return splits, train_split
    return replace(splits, val=splits.val.to(device), test=splits.test.to(device)), (
        train_split.to(device)
    )


def has_conv2d(model: nn.Module) -> bool:
    """Whether any layer of `model` is a 2-d convolution (where NHWC layout pays off)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def wants_channels_last(setting: Any, model: nn.Module, device: torch.device) -> bool:
    """`channels_last` resolved for this model and device (`auto`: a GPU and convolutions)."""
    if setting == "auto":
        return device.type == "cuda" and has_conv2d(model)
    return bool(setting)


def to_channels_last(batch: torch.Tensor) -> torch.Tensor:
    """A 4-d batch in NHWC layout (other tensors, a head's flat features, as they are)."""
    return batch.contiguous(memory_format=torch.channels_last) if batch.ndim == 4 else batch
