"""A loader no decorator registers: a data preset names it by import path
(`name: tl_plugin_demo.loaders:checkers`)."""

from __future__ import annotations

import torch

from transferlab.data.registry import BaseData

SIZES = (2, 4, 8)


def checkers(*, image_size: int, channels: int, num_samples: int = 300) -> BaseData:
    """Checkerboards whose squares are 2, 4 or 8 pixels (the class), at random offsets."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(num_samples) % len(SIZES)
    y, x = torch.meshgrid(torch.arange(image_size), torch.arange(image_size), indexing="ij")
    images = torch.empty(num_samples, channels, image_size, image_size, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        dy, dx = torch.randint(0, 8, (2,), generator=gen).tolist()
        size = SIZES[label]
        board = (((y + dy) // size + (x + dx) // size) % 2) * 255
        images[i] = board.to(torch.uint8)[None]
    return BaseData(images, labels, tuple(f"{s}px" for s in SIZES))
