"""Methods that choose which depth groups train: fine-tuning with a frozen prefix, surgical
fine-tuning of any subset, and linear probing then fine-tuning (LP-FT)."""

from __future__ import annotations

from typing import Any

from torch import nn

from transferlab.errors import ConfigError
from transferlab.methods.base import Context, Method, check_range, group_names, out_of_groups
from transferlab.models.depth import (
    check_freeze_depth,
    freeze_group_set,
    model_display_name,
    trainable_parameters,
)


class FineTune(Method):
    """The first `freeze_depth` depth groups frozen (BatchNorm statistics too), the rest trained:
    0 is full fine-tuning, `num_depth_groups - 1` a linear probe."""

    name = "finetune"

    def check(self, model: nn.Module, context: Context) -> None:
        check_freeze_depth(model_display_name(model), context.freeze_depth, group_names(model))

    def setup(self, model: nn.Module, context: Context) -> list[nn.Module]:
        self.check(model, context)
        return freeze_group_set(model, range(context.freeze_depth))

    def frozen_prefix_depth(self, context: Context) -> int:
        return context.freeze_depth


class Surgical(Method):
    """Surgical fine-tuning (Lee et al., ICLR 2023): only the depth groups in `tune_stages` train
    (any subset, by index: 0 is the stem), and the head when `train_head` (a new label space
    needs a trained head); every other group is frozen, BatchNorm statistics included."""

    name = "surgical"

    def __init__(self, tune_stages: list[int], train_head: bool = True) -> None:
        self.tune_stages = list(tune_stages)
        self.train_head = train_head

    def check(self, model: nn.Module, context: Context) -> None:
        count = len(group_names(model))
        bad = [i for i in self.tune_stages if isinstance(i, bool) or not isinstance(i, int)]
        if not self.tune_stages or bad or not all(0 <= i < count for i in self.tune_stages):
            raise out_of_groups("tune_stages", self.tune_stages, model)

    def setup(self, model: nn.Module, context: Context) -> list[nn.Module]:
        self.check(model, context)
        count = len(group_names(model))
        tuned = set(self.tune_stages) | ({count - 1} if self.train_head else set())
        return freeze_group_set(model, (i for i in range(count) if i not in tuned))

    def settings(self) -> dict[str, Any]:
        return {"tune_stages": self.tune_stages, "train_head": self.train_head}


class LPFT(Method):
    """Linear probing, then full fine-tuning (Kumar et al., ICLR 2022): the first
    `probe_share` of the epochs train the head alone on the frozen body, the rest train every
    layer, in one optimiser and schedule (frozen weights get no gradients, so no updates)."""

    name = "lp_ft"

    def __init__(self, probe_share: float = 0.5) -> None:
        self.probe_share = probe_share
        self._probe_epochs = 0
        self._trainable = (0, 0)  # parameters trained in each phase, counted at setup

    def probe_epochs(self, epochs: int) -> int:
        return round(self.probe_share * epochs)

    def check(self, model: nn.Module, context: Context) -> None:
        check_range("probe_share", self.probe_share, 0, high=1)
        probe = self.probe_epochs(context.epochs)
        if not 1 <= probe < context.epochs:
            raise ConfigError(
                f"method.probe_share={self.probe_share} leaves {probe} of {context.epochs} "
                f"epochs to the probe; valid: a share giving 1..{context.epochs - 1} epochs"
            )

    def setup(self, model: nn.Module, context: Context) -> list[nn.Module]:
        self.check(model, context)
        self._probe_epochs = self.probe_epochs(context.epochs)
        frozen = freeze_group_set(model, range(len(group_names(model)) - 1))
        self._trainable = (trainable_parameters(model), sum(p.numel() for p in model.parameters()))
        return frozen

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        return [{"params": list(model.parameters()), "lr_scale": 1.0}]

    def on_epoch_start(self, model: nn.Module, epoch: int, frozen: list[nn.Module]) -> list:
        if epoch < self._probe_epochs:
            return frozen
        for param in model.parameters():  # phase two: every layer trains
            param.requires_grad_(True)
        for module in frozen:
            module.train(model.training)
        return []

    def phases(self, context: Context) -> list[dict[str, Any]]:
        probe = self.probe_epochs(context.epochs)
        head, everything = self._trainable
        rest = context.epochs - probe
        return [
            {"phase": "linear_probe", "epochs": probe, "trainable_parameters": head},
            {"phase": "finetune", "epochs": rest, "trainable_parameters": everything},
        ]

    def settings(self) -> dict[str, Any]:
        return {"probe_share": self.probe_share}
