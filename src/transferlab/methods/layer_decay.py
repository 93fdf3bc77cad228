"""Layer-wise learning-rate decay: deeper from the head, smaller steps."""

from __future__ import annotations

from typing import Any

from torch import nn

from transferlab.errors import ConfigError
from transferlab.methods.base import Context, Method, check_range
from transferlab.models.depth import depth_groups


class LayerDecay(Method):
    """Full fine-tuning with the budget's learning rate times `decay ** d` for a depth group
    `d` groups before the head (the head: `decay ** 0`, the stem: `decay ** (n - 1)`), over the
    depth groups timm's `group_matcher` gives (as timm's own layer-decay optimiser)."""

    name = "layer_decay"

    def __init__(self, decay: float = 0.7) -> None:
        self.decay = decay

    def check(self, model: nn.Module, context: Context) -> None:
        check_range("decay", self.decay, 0)
        if self.decay == 0 or self.decay > 1:
            raise ConfigError(f"method.decay={self.decay!r} is out of range; valid: 0 < decay <= 1")

    def lr_scales(self, model: nn.Module) -> dict[str, float]:
        """The learning-rate factor of each depth group, by group name."""
        groups = depth_groups(model)
        return {name: self.decay ** (len(groups) - 1 - i) for i, (name, _) in enumerate(groups)}

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        params = dict(model.named_parameters())
        scales = self.lr_scales(model)
        return [
            {"params": [params[n] for n in names if params[n].requires_grad], "lr_scale": scales[g]}
            for g, names in depth_groups(model)
            if names
        ]

    def settings(self) -> dict[str, Any]:
        return {"decay": self.decay}
