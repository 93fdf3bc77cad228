"""What every source-stage objective offers the training code (`Objective`), and the default.

An objective without labels trains the timm model built without a classifier (its forward
gives the pooled features) together with the modules it adds (`heads`); the stage selects the
epoch with the lowest validation loss of the objective itself, since there is no accuracy to
select on. The heads are not part of the model handed to the target stage.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class Objective:
    """A source stage's training objective. Subclasses without labels override `heads` and
    `loss`; `supervised` is the plain classification every stage trains otherwise."""

    #: The preset's name, in records and in the analysis's source names ("digits, denoising").
    name: ClassVar[str] = "objective"
    #: Whether the objective reads the source's labels (False: a label-free subset is drawn).
    uses_labels: ClassVar[bool] = False

    def check(self) -> None:
        """Raise a one-line ConfigError when a setting is out of range (before training)."""

    def heads(self, features: int, channels: int, image_size: int) -> nn.Module:
        """The modules the objective trains beside the model (never transferred)."""
        return nn.Identity()

    def loss(
        self,
        model: nn.Module,
        heads: nn.Module,
        images: torch.Tensor,
        pixels: tuple[torch.Tensor, torch.Tensor],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """The loss of one batch of standardised `images` (labels are never given);
        `pixels` is the (mean, std) that maps [0, 1] pixels to the model's input;
        `generator` draws any randomness (corruptions), seeded by the stage."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The objective's own settings, for its label."""
        return {}


class Supervised(Objective):
    """Classification of the source's labels by the model's own classifier (the default)."""

    name = "supervised"
    uses_labels = True


def is_supervised(node: Any) -> bool:
    """Whether an objective preset (a config node or None) means supervised pre-training."""
    target = node.get("_target_") if node is not None and hasattr(node, "get") else None
    return target is None or str(target).rsplit(".", 1)[-1] == Supervised.__name__


def objective_label(objective: Objective) -> str:
    """`name` or `name(key=value, ...)`, as records and the analysis name it."""
    settings = ", ".join(f"{k}={v}" for k, v in sorted(objective.settings().items()))
    return f"{objective.name}({settings})" if settings else objective.name
