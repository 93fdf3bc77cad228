"""SimCLR (Chen et al., ICML 2020): two random views of each image, their features through a
projection head, and the NT-Xent loss that pulls the two views of an image together and pushes
every other image of the batch away. The projection head is dropped at hand-over.

The views are drawn on the device from the stage's seeded generator, on standardised images: a
left-right flip and a padded random crop (`training.augment.FlipCrop`), a per-image contrast and
brightness change, and Gaussian noise. The paper's colour distortion and random resized crop
at 224 px have no counterpart at the built-in data's 16-32 px; these are the strongest views
that keep a small digit recognisable. SimCLR wants large batches (many negatives): at the
built-in data's sizes it is the weaker of the two self-supervised objectives, which a study can
measure (`unsupervised_source`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from transferlab.errors import ConfigError
from transferlab.objectives.base import Objective

#: Share of the image side zero-padded on every side before a random crop.
CROP_SHARE = 0.125


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """The NT-Xent loss of two batches of projections (n, d), row i of each the two views of
    image i: cross-entropy of each view's cosine similarities to the 2n - 1 others (divided by
    the temperature), whose target is the other view of the same image."""
    z = nn.functional.normalize(torch.cat([first, second]).float(), dim=1)
    n = len(first)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))  # a view is not its own positive or negative
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return nn.functional.cross_entropy(similarity, positives)


class SimCLR(Objective):
    """Two views per image, a projection head of `hidden` then `projection` units, NT-Xent at
    `temperature`; `jitter` is the largest per-image contrast and brightness change, `noise`
    the std of the Gaussian noise (both in standardised units)."""

    name = "simclr"

    def __init__(
        self,
        temperature: float = 0.5,
        hidden: int = 256,
        projection: int = 64,
        jitter: float = 0.4,
        noise: float = 0.1,
    ) -> None:
        self.temperature, self.hidden, self.projection = temperature, hidden, projection
        self.jitter, self.noise = jitter, noise

    def check(self) -> None:
        for name, value, low in (("temperature", self.temperature, 0), ("noise", self.noise, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
                raise ConfigError(f"pretrain.objective.{name}={value!r} must be a number >= 0")
        if self.temperature == 0:
            raise ConfigError("pretrain.objective.temperature=0 must be > 0")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"pretrain.objective.jitter={self.jitter!r} must be in [0, 1)")
        for name, value in (("hidden", self.hidden), ("projection", self.projection)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"pretrain.objective.{name}={value!r} must be an integer >= 1")

    def heads(self, features: int, channels: int, image_size: int) -> nn.Module:
        from transferlab.training.augment import FlipCrop  # the target stage's own crop

        self._crop = FlipCrop(flip=0.5, padding=max(1, round(CROP_SHARE * image_size)))
        return nn.Sequential(
            nn.Linear(features, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.projection)
        )

    def view(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random view of each standardised image."""
        n, device = len(images), images.device
        images = self._crop(images, generator)
        scale = 1 + self.jitter * (
            2 * torch.rand(n, 1, 1, 1, generator=generator, device=device) - 1
        )
        shift = self.jitter * (2 * torch.rand(n, 1, 1, 1, generator=generator, device=device) - 1)
        noise = torch.randn(images.shape, generator=generator, device=device)
        return images * scale + shift + self.noise * noise

    def loss(
        self,
        model: nn.Module,
        heads: nn.Module,
        images: torch.Tensor,
        pixels: tuple[torch.Tensor, torch.Tensor],
        generator: torch.Generator,
    ) -> torch.Tensor:
        views = torch.cat([self.view(images, generator), self.view(images, generator)])
        projected = heads(model(views))
        return nt_xent(projected[: len(images)], projected[len(images) :], self.temperature)

    def settings(self) -> dict[str, Any]:
        return {"temperature": self.temperature}
