"""Tensor helpers shared by loaders and shifts: size/channel conversion, chunked mapping."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
import torchvision.transforms.v2.functional as F

#: Images processed at once by chunked operations (bounds peak float memory at large sizes).
CHUNK_SIZE = 1024

#: Largest uint8 pixel value.
PIXEL_MAX = 255
#: ITU-R 601-2 luma weights for RGB -> grayscale (as PIL's "L" conversion).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (unlike hash(), the same in every process)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*parts: object) -> torch.Generator:
    """A CPU torch.Generator seeded from ``parts`` by :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def map_chunks(images: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``fn`` to consecutive chunks of ``images`` along dim 0 and concatenate."""
    if images.shape[0] <= CHUNK_SIZE:
        return fn(images)
    return torch.cat([fn(chunk) for chunk in images.split(CHUNK_SIZE)])


def to_float(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 images to floats in [0, 1], the range every model is trained on; floating images
    are only cast. The one place pixels are scaled (data, training and analysis use it)."""
    if images.dtype == torch.uint8:
        return images.to(dtype) / PIXEL_MAX
    if images.is_floating_point():
        return images.to(dtype)
    raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8, clamped and rounded."""
    return (images.clamp(0.0, 1.0) * PIXEL_MAX).round().to(torch.uint8)


def _fit_one_chunk(images: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    height, width = images.shape[-2:]
    if (height, width) != (image_size, image_size):
        if height != width:  # keep the aspect ratio: shorter side to size, then centre crop
            images = F.resize(images, [image_size], antialias=True)
            images = F.center_crop(images, [image_size, image_size])
        else:
            images = F.resize(images, [image_size, image_size], antialias=True)
    have = images.shape[1]
    if have == channels:
        return images.contiguous()
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
    raise ValueError(f"cannot convert {have} channels to {channels}")


def fit_images(images: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) -> uint8 (N, channels, image_size, image_size).

    Resizes with antialiasing (centre-cropping non-square images), replicates grayscale to
    three channels or converts RGB to grayscale.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    return map_chunks(images, lambda chunk: _fit_one_chunk(chunk, image_size, channels))
