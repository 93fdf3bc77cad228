"""Datasets read from disk per example: the streaming path for data that does not fit in memory.

A file-backed dataset (an image folder, or a plugin's listing: `registry.BaseFiles`) or one held
as raw arrays at their own size (torchvision's: `registry.BaseArrays`) is either fitted whole
into memory (`ImageTensors`, fast for small data) or kept as an `ImageStream`: its reader (a file
per example, or the raw array), labels and origins and the image shifts to apply, with pixels
decoded and fitted only when a DataLoader worker asks for an example. Both paths fit an image
with the same function (`FileReader.read` / `ArrayReader.read`: the image at the run's size and
channels, shorter side resized, then centre-cropped) and apply the same image shifts to each
image by itself, so a run gives the same numbers on either (a test compares them). Memory is
bounded by the batch and the workers (and the raw arrays), not by the dataset at the run's size:
the launching process and the checks read the listing only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torchvision.transforms.v2.functional as F
from PIL import Image

from transferlab._helpers import first_line
from transferlab.data.image_ops import CHUNK_SIZE, fit_images
from transferlab.data.tensors import ImageOp, ImageTensors
from transferlab.errors import ConfigError

#: How a streamed dataset's images are decoded for each channel count.
PIL_MODES = {1: "L", 3: "RGB"}


class UnreadableImage(OSError):
    """An image file that cannot be decoded. Read whole into memory it is bad input found
    before training (a ConfigError); streamed, it is met mid-run in a DataLoader worker, and
    the run is recorded as failed (the sweep goes on)."""


class FileReader:
    """Decodes the image files of a listing at one size and channel count.

    The paths are one numpy string array (not a list of Python strings): DataLoader workers
    share it with their parent without copying it page by page.
    """

    def __init__(self, files: Sequence[str], image_size: int, channels: int) -> None:
        self.files = np.asarray(files, dtype=np.str_)
        self.image_size, self.channels = int(image_size), int(channels)

    def __len__(self) -> int:
        return len(self.files)

    def read(self, position: int) -> torch.Tensor:
        """uint8 (C, H, W) image of file ``position``: decoded, converted to the channel count,
        shorter side resized to the image size and centre-cropped (`fit_images`)."""
        path = str(self.files[position])
        try:
            with Image.open(path) as img:
                pixels = F.pil_to_tensor(img.convert(PIL_MODES[self.channels]))
        except OSError as exc:
            raise UnreadableImage(f"cannot read image {path}: {first_line(exc)}") from None
        return fit_images(pixels.unsqueeze(0), self.image_size, self.channels)[0]

    def read_all(self) -> torch.Tensor:
        """Every image, uint8 (N, C, H, W): the in-memory path (written into one tensor, so
        the peak is the decoded dataset, not twice it)."""
        side = self.image_size
        out = torch.empty(len(self), self.channels, side, side, dtype=torch.uint8)
        try:
            for i in range(len(self)):
                out[i] = self.read(i)
        except UnreadableImage as exc:  # found before training: bad input, one line
            raise ConfigError(str(exc)) from None
        return out


#: How each array layout becomes (N, C, H, W) (NHW is given its channel axis by `fit_images`).
_TO_NCHW = {"NHW": None, "NCHW": None, "NHWC": (0, 3, 1, 2)}
ARRAY_LAYOUTS = tuple(_TO_NCHW)


class ArrayReader:
    """Fits the raw images of an array (`registry.BaseArrays`) to one size and channel count,
    one example or the whole array: the same function (`fit_images`) on either path.

    The array stays as the loader gave it (numpy, uint8): DataLoader workers forked from the
    parent share its pages instead of copying them.
    """

    def __init__(self, images: np.ndarray, layout: str, image_size: int, channels: int) -> None:
        if layout not in _TO_NCHW:
            raise ValueError(f"layout must be one of {', '.join(ARRAY_LAYOUTS)}, got {layout!r}")
        self.images, self.layout = images, layout
        self.image_size, self.channels = int(image_size), int(channels)

    def __len__(self) -> int:
        return len(self.images)

    def _fitted(self, start: int, stop: int) -> torch.Tensor:
        raw = torch.from_numpy(np.ascontiguousarray(self.images[start:stop]))
        if (order := _TO_NCHW[self.layout]) is not None:
            raw = raw.permute(*order)
        return fit_images(raw, self.image_size, self.channels)

    def read(self, position: int) -> torch.Tensor:
        """uint8 (C, H, W) image ``position`` at the reader's size and channels (a copy: an
        image already at that size would otherwise be a view of the shared array)."""
        return self._fitted(position, position + 1)[0].clone()

    def read_all(self) -> torch.Tensor:
        """Every image, uint8 (N, C, H, W), fitted a chunk at a time into one tensor."""
        side = self.image_size
        out = torch.empty(len(self), self.channels, side, side, dtype=torch.uint8)
        for start in range(0, len(self), CHUNK_SIZE):
            stop = min(start + CHUNK_SIZE, len(self))
            out[start:stop] = self._fitted(start, stop)
        return out


#: What an `ImageStream` reads its examples with.
Reader = FileReader | ArrayReader


@dataclass(frozen=True)
class ImageStream:
    """Examples of a file-backed dataset, read when asked for (the API of `ImageTensors`).

    ``position`` is each example's file in ``reader``, ``labels`` and ``origin`` as for
    `ImageTensors`; ``ops`` are the image shifts applied to each image after decoding.
    """

    reader: Reader
    position: torch.Tensor
    labels: torch.Tensor
    origin: torch.Tensor
    ops: tuple[ImageOp, ...] = ()

    def __post_init__(self) -> None:
        n = self.position.shape[0]
        if self.labels.shape != (n,) or self.origin.shape != (n,):
            raise ValueError(
                f"labels and origin must have shape ({n},), got {tuple(self.labels.shape)} "
                f"and {tuple(self.origin.shape)}"
            )

    def __len__(self) -> int:
        """Number of examples."""
        return int(self.labels.shape[0])

    @property
    def channels(self) -> int:
        """Image channels (1 or 3)."""
        return self.reader.channels

    @property
    def image_size(self) -> int:
        """Side length of the square images."""
        return self.reader.image_size

    def subset(self, idx: torch.Tensor) -> ImageStream:
        """Examples at positions ``idx`` (a new ImageStream; nothing is read)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return replace(
            self, position=self.position[idx], labels=self.labels[idx], origin=self.origin[idx]
        )

    def map_images(self, op: ImageOp) -> ImageStream:
        """The stream with ``op`` applied to each image when read. The op runs once now on a
        blank image, so a shift that cannot apply (tint on one channel) fails before training."""
        blank = torch.zeros(1, self.channels, self.image_size, self.image_size, dtype=torch.uint8)
        op(blank, torch.zeros(1, dtype=torch.long))
        return replace(self, ops=(*self.ops, op))

    def image(self, i: int) -> torch.Tensor:
        """uint8 (C, H, W) image of example ``i``, decoded and shifted."""
        images = self.reader.read(int(self.position[i])).unsqueeze(0)
        origin = self.origin[i : i + 1]
        for op in self.ops:
            images = op(images, origin)
        return images[0]

    def images_at(self, idx: torch.Tensor) -> torch.Tensor:
        """uint8 (n, C, H, W) images at positions ``idx``."""
        idx = torch.as_tensor(idx, dtype=torch.long).flatten().tolist()
        if not idx:
            side = self.image_size
            return torch.empty(0, self.channels, side, side, dtype=torch.uint8)
        return torch.stack([self.image(i) for i in idx])

    def to(self, device: torch.device) -> ImageStream:
        """The stream itself: its batches are moved to the device as they are read."""
        return self

    def in_memory(self) -> ImageTensors:
        """Every example decoded and shifted, as `ImageTensors`."""
        return ImageTensors(self.images_at(torch.arange(len(self))), self.labels, self.origin)


class StreamDataset(torch.utils.data.Dataset):
    """A map-style dataset over an `ImageStream`: (uint8 image, label) per index, decoded in
    the DataLoader worker that asks for it."""

    def __init__(self, stream: ImageStream) -> None:
        self.stream = stream

    def __len__(self) -> int:
        return len(self.stream)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.stream.image(i), self.stream.labels[i]
