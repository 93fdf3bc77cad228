"""Training-time augmentations of a target stage, applied to whole uint8 batches on the device
(no per-image Python loop), drawn from the module's own seeded generator so a run is repeatable.

Presets in `conf/augment/` (the `augment` group): `none` (the default: flipping or cropping a
digit can change what it shows), `flip_crop` (horizontal flip and a padded random crop, each
image its own draw) and `trivial_augment` (torchvision's TrivialAugmentWide, one operation and
magnitude drawn per batch). The preset is part of the run identity and of the analysis cell,
and every arm of a cell gets the same one; source stages are not augmented.
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2 as T


class FlipCrop:
    """Flip each image left-right with probability `flip`, and crop it back to its size at a
    random offset after zero-padding `padding` pixels on every side."""

    def __init__(self, flip: float = 0.5, padding: int = 2) -> None:
        if not 0.0 <= flip <= 1.0 or padding < 0:
            raise ValueError(f"flip must be in [0, 1] and padding >= 0, got {flip}, {padding}")
        self.flip, self.padding = flip, padding

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = images.shape
        device = images.device
        flips = torch.rand(n, generator=generator, device=device) < self.flip
        images = torch.where(flips[:, None, None, None], images.flip(-1), images)
        if self.padding == 0:
            return images
        p = self.padding
        padded = torch.nn.functional.pad(images, (p, p, p, p))
        dy, dx = torch.randint(0, 2 * p + 1, (2, n), generator=generator, device=device)
        rows = dy[:, None] + torch.arange(h, device=device)  # (n, h)
        cols = dx[:, None] + torch.arange(w, device=device)  # (n, w)
        batch = torch.arange(n, device=device)[:, None, None]
        cropped = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
        return cropped.permute(0, 3, 1, 2).contiguous()


class TrivialAugment:
    """torchvision's TrivialAugmentWide on the whole batch (one operation per batch), seeded
    from the run's generator rather than the global one."""

    def __init__(self, num_magnitude_bins: int = 31) -> None:
        self.transform = T.TrivialAugmentWide(num_magnitude_bins=num_magnitude_bins)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        devices = [images.device] if images.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return self.transform(images)
