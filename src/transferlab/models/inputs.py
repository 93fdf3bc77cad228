"""What a model's input pixels are scaled to: uint8 images become floats in [0, 1] (data's
`to_float`), then are standardised with the mean and std of the model's pretrained data config
(timm's `resolve_data_config`), the statistics hub and file weights were trained with.

Every arm of a cell runs the same architecture, so scratch, source and hub runs of a cell are
fed alike; `input_norm=unit` keeps plain [0, 1] pixels. The statistics travel with a source
checkpoint and into the record, and the analysis feeds features the same way.
"""

from __future__ import annotations

import torch
from timm.data import resolve_data_config
from torch import nn

from transferlab.data.image_ops import to_float

#: The statistics of plain [0, 1] pixels (one value, broadcast over channels).
UNIT_STATS = ((0.0,), (1.0,))

Stats = tuple[tuple[float, ...], tuple[float, ...]]


def input_stats(model: nn.Module, in_chans: int, norm: str = "model") -> Stats:
    """(mean, std) per channel for `model` fed `in_chans` channels; one-channel images get the
    mean of the RGB statistics."""
    if norm == "unit":
        return UNIT_STATS
    config = resolve_data_config({}, model=model)
    mean, std = tuple(map(float, config["mean"])), tuple(map(float, config["std"]))
    if in_chans != len(mean):
        mean, std = (sum(mean) / len(mean),) * in_chans, (sum(std) / len(std),) * in_chans
    return mean, std


def prepare(images: torch.Tensor, stats: Stats, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (N, C, H, W) images as the model's input: [0, 1], then standardised."""
    mean, std = (torch.tensor(v, dtype=dtype, device=images.device)[:, None, None] for v in stats)
    return (to_float(images, dtype) - mean) / std
