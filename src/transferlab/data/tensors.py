"""In-memory image datasets: uint8 image tensors with labels and base-dataset provenance.

`ImageTensors` and `data.streaming.ImageStream` (the same examples read from disk per batch)
offer one small API: `labels`, `origin`, `len`, `subset`, `map_images`, `images_at`,
`channels`, `image_size`, `to`; splitting, subsets and shifts use only that API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from transferlab.data.image_ops import CHUNK_SIZE

#: An image shift with its parameters bound: (uint8 images, origins) -> uint8 images.
ImageOp = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ImageTensors:
    """A set of examples held in memory.

    ``images`` is uint8 (N, C, H, W), ``labels`` int64 (N,), ``origin`` int64 (N,) the index of
    each example in its base dataset (official-test examples are offset by the size of the
    official training set, so the two never coincide). Tensors handed out by
    :func:`transferlab.data.build_splits` are shared through an in-process cache: callers must
    not modify them in place (index or copy first).
    """

    images: torch.Tensor
    labels: torch.Tensor
    origin: torch.Tensor

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.shape != (n,) or self.origin.shape != (n,):
            raise ValueError(
                f"labels and origin must have shape ({n},), got {tuple(self.labels.shape)} "
                f"and {tuple(self.origin.shape)}"
            )

    def __len__(self) -> int:
        """Number of examples."""
        return int(self.labels.shape[0])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels), as a TensorDataset takes them."""
        return self.images, self.labels

    def to(self, device: torch.device) -> ImageTensors:
        """The same examples on `device` (no copy when they are there already)."""
        return ImageTensors(self.images.to(device), self.labels.to(device), self.origin.to(device))

    def subset(self, idx: torch.Tensor) -> ImageTensors:
        """Examples at positions ``idx`` (a new ImageTensors; provenance is kept)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return ImageTensors(self.images[idx], self.labels[idx], self.origin[idx])

    def images_at(self, idx: torch.Tensor) -> torch.Tensor:
        """uint8 (n, C, H, W) images at positions ``idx``."""
        return self.images[torch.as_tensor(idx, dtype=torch.long)]

    def map_images(self, op: ImageOp) -> ImageTensors:
        """Every image through ``op`` (an image shift), a chunk at a time (bounds the floats)."""
        chunks = [
            op(self.images[i : i + CHUNK_SIZE], self.origin[i : i + CHUNK_SIZE])
            for i in range(0, max(len(self), 1), CHUNK_SIZE)
        ]
        return replace(self, images=torch.cat(chunks) if len(chunks) > 1 else chunks[0])

    @property
    def channels(self) -> int:
        """Image channels (1 or 3)."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        """Side length of the square images."""
        return int(self.images.shape[-1])


@dataclass(frozen=True)
class DatasetSplits:
    """Train pool, validation and test sets of one (possibly shifted) dataset view, each an
    `ImageTensors` (in memory) or an `ImageStream` (read from disk per batch).

    ``official_test_offset`` is the size of the base dataset's official training set when the
    test set is the official one (``origin >= offset`` marks official-test examples), else None.
    """

    train: Any
    val: Any
    test: Any
    classes: tuple[str, ...]
    description: str
    official_test_offset: int | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes of the label space (after shifts)."""
        return len(self.classes)

    @property
    def channels(self) -> int:
        """Image channels (1 or 3)."""
        return self.train.channels

    @property
    def image_size(self) -> int:
        """Side length of the square images."""
        return self.train.image_size
