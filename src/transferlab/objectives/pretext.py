"""Objectives that never read the source's labels.

`Denoising` (Vincent et al., ICML 2008): the image corrupted by Gaussian noise or by masking is
encoded by the model and a small decoder reconstructs the clean image; the loss is the mean
squared error on the standardised pixels. The decoder is a two-layer perceptron from the pooled
features to the image, so it fits every timm model (convolutional or not) the same way.

`Rotation` (Gidaris et al., ICLR 2018): each image is shown at 0, 90, 180 and 270 degrees, all
four in the same batch as the paper found best, and a linear head predicts which: the
self-supervised objective without a decoder that needs no augmentation pipeline or negatives,
is deterministic, and has no hyper-parameter, so it fits the small images and short budgets of
the built-in data (`contrastive.SimCLR` needs large batches and strong views).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from transferlab.errors import ConfigError
from transferlab.objectives.base import Objective

#: Corruptions a denoising source can be trained against.
CORRUPTIONS = ("noise", "mask")
#: Rotations (quarter turns) a rotation head tells apart.
QUARTER_TURNS = 4


class Denoising(Objective):
    """Reconstruct the clean image from a corrupted one: `noise` adds Gaussian noise of std
    `strength` to the [0, 1] pixels; `mask` blanks each pixel (all channels) with probability
    `strength`. `hidden`: the decoder's hidden width."""

    name = "denoising"

    def __init__(self, corruption: str = "noise", strength: float = 0.3, hidden: int = 256):
        self.corruption, self.strength, self.hidden = corruption, strength, hidden

    def check(self) -> None:
        if self.corruption not in CORRUPTIONS:
            raise ConfigError(
                f"pretrain.objective.corruption={self.corruption!r} is not one of "
                f"{', '.join(CORRUPTIONS)}"
            )
        strength = self.strength
        number = isinstance(strength, (int, float)) and not isinstance(strength, bool)
        if not number or not 0 < strength <= (1 if self.corruption == "mask" else float("inf")):
            bound = "in (0, 1]" if self.corruption == "mask" else "> 0"
            raise ConfigError(f"pretrain.objective.strength={strength!r} must be {bound}")
        hidden = self.hidden
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"pretrain.objective.hidden={hidden!r} must be an integer >= 1")

    def heads(self, features: int, channels: int, image_size: int) -> nn.Module:
        return nn.Sequential(
            nn.Linear(features, self.hidden),
            nn.GELU(),
            nn.Linear(self.hidden, channels * image_size * image_size),
        )

    def corrupt(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The corrupted [0, 1] `pixels` (noise is not clipped: it is what the encoder sees)."""
        if self.corruption == "noise":
            noise = torch.randn(pixels.shape, generator=generator, device=pixels.device)
            return pixels + float(self.strength) * noise
        n, _, h, w = pixels.shape
        keep = torch.rand((n, 1, h, w), generator=generator, device=pixels.device)
        return pixels * (keep >= self.strength)

    def loss(
        self,
        model: nn.Module,
        heads: nn.Module,
        images: torch.Tensor,
        pixels: tuple[torch.Tensor, torch.Tensor],
        generator: torch.Generator,
    ) -> torch.Tensor:
        mean, std = pixels
        corrupted = (self.corrupt(images * std + mean, generator) - mean) / std
        rebuilt = heads(model(corrupted)).view(images.shape)
        return nn.functional.mse_loss(rebuilt.float(), images.float())

    def settings(self) -> dict[str, Any]:
        return {"corruption": self.corruption, "strength": self.strength}


class Rotation(Objective):
    """Predict which of four quarter turns each image was given (all four per image)."""

    name = "rotation"

    def heads(self, features: int, channels: int, image_size: int) -> nn.Module:
        return nn.Linear(features, QUARTER_TURNS)

    def loss(
        self,
        model: nn.Module,
        heads: nn.Module,
        images: torch.Tensor,
        pixels: tuple[torch.Tensor, torch.Tensor],
        generator: torch.Generator,
    ) -> torch.Tensor:
        turned = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(QUARTER_TURNS)])
        turns = torch.arange(QUARTER_TURNS, device=images.device).repeat_interleave(len(images))
        return nn.functional.cross_entropy(heads(model(turned)).float(), turns)
