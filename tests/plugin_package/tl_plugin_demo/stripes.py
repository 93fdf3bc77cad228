"""Stripes at three orientations, registered with transferlab when the plugin is imported."""

from __future__ import annotations

import torch

from transferlab.data import register_dataset
from transferlab.data.registry import BaseData

ORIENTATIONS = ("horizontal", "vertical", "diagonal")


def pattern(kind: int, image_size: int, period: torch.Tensor) -> torch.Tensor:
    """uint8 (n, image_size, image_size) stripes of one orientation, one period per image."""
    y, x = torch.meshgrid(torch.arange(image_size), torch.arange(image_size), indexing="ij")
    coordinate = (y, x, x + y)[kind].float()
    waves = torch.sin(2 * torch.pi * coordinate[None] / period[:, None, None])
    return ((waves + 1) * 127.5).to(torch.uint8)


@register_dataset("stripes")
def stripes(
    *, image_size: int, channels: int, num_samples: int = 300, data_seed: int = 0
) -> BaseData:
    """`num_samples` striped images, balanced over ORIENTATIONS, periods drawn per image."""
    gen = torch.Generator().manual_seed(data_seed)
    labels = torch.arange(num_samples) % len(ORIENTATIONS)
    periods = 3 + 5 * torch.rand(num_samples, generator=gen)
    images = torch.empty(num_samples, channels, image_size, image_size, dtype=torch.uint8)
    for kind in range(len(ORIENTATIONS)):
        chosen = labels == kind
        images[chosen] = pattern(kind, image_size, periods[chosen])[:, None]
    return BaseData(images, labels, ORIENTATIONS)
