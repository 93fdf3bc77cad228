"""Low-rank adapters (LoRA, Hu et al., 2021) on timm models, through the `peft` library."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from transferlab._helpers import first_line
from transferlab.errors import ConfigError
from transferlab.methods.base import Context, Method, check_range, group_names
from transferlab.models.depth import depth_groups, freeze_group_set, model_display_name

#: `target_modules: auto` adapts every layer of these kinds outside the head (grouped
#: convolutions, e.g. depthwise ones, are left out: peft needs the rank divisible by groups).
AUTO = "auto"
ADAPTED_KINDS = (nn.Linear, nn.Conv2d)


def auto_targets(model: nn.Module) -> list[str]:
    """The names of the modules `target_modules: auto` adapts."""
    head = {name.rsplit(".", 1)[0] for name in depth_groups(model)[-1][1]}
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, ADAPTED_KINDS)
        and getattr(module, "groups", 1) == 1
        and name not in head
    ]


class LoRA(Method):
    """Adapters of rank `r` (scaled by `alpha / r`, with `dropout` on their input) beside the
    `target_modules` (module names, or a regular expression over them; `auto`: every linear
    and ungrouped convolution outside the head). The transferred weights stay frozen,
    BatchNorm statistics included; the adapters and the head train."""

    name = "lora"

    def __init__(
        self, r: int = 4, alpha: float = 8.0, dropout: float = 0.0, target_modules: Any = AUTO
    ) -> None:
        self.r, self.alpha, self.dropout = r, alpha, dropout
        self.target_modules = (
            target_modules if isinstance(target_modules, str) else list(target_modules)
        )

    def _config(self, model: nn.Module) -> Any:
        from peft import LoraConfig  # imported by the runs that use it

        targets = auto_targets(model) if self.target_modules == AUTO else self.target_modules
        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets
        )

    def check(self, model: nn.Module, context: Context) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ConfigError(f"method.r={self.r!r} is out of range; valid: an integer >= 1")
        check_range("alpha", self.alpha, 0)
        check_range("dropout", self.dropout, 0, high=1)
        from peft import inject_adapter_in_model

        try:
            inject_adapter_in_model(self._config(model), copy.deepcopy(model))
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"method.target_modules={self.target_modules} cannot be adapted in "
                f"{model_display_name(model)} ({first_line(exc)}); candidates: "
                f"{', '.join(auto_targets(model)[:6])}, ..."
            ) from None

    def setup(self, model: nn.Module, context: Context) -> list[nn.Module]:
        from peft import inject_adapter_in_model

        self.check(model, context)
        head = set(depth_groups(model)[-1][1])
        frozen = freeze_group_set(model, range(len(group_names(model)) - 1))
        inject_adapter_in_model(self._config(model), model)
        for name, param in model.named_parameters():
            param.requires_grad_(name in head or ".lora_" in name)
        return frozen

    def settings(self) -> dict[str, Any]:
        return {
            "r": self.r,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "target_modules": self.target_modules,
        }
