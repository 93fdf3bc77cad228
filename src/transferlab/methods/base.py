"""What every fine-tuning method offers the training code (a small API, as timm's models do).

A method decides, for a target stage that starts from transferred weights, which parameters
train and when (`setup`, `on_epoch_start`), at which learning rate (`parameter_groups`), with
which optimisers over which epochs (`spans`) and under which extra loss (`penalty`). Every
method gets the stage's whole budget of optimiser steps; the record says how it spent them
(`phases`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from transferlab.errors import ConfigError
from transferlab.models.depth import depth_groups, freeze_group_set, model_display_name


@dataclass(frozen=True)
class Context:
    """What a method knows about the stage it shapes."""

    freeze_depth: int  # the `freeze_depth` setting (only `finetune` reads it)
    epochs: int  # the stage budget's epochs
    head_reset: bool | None  # whether the classifier is new (None: trained from scratch)


@dataclass(frozen=True)
class Span:
    """Epochs `first_epoch` to `first_epoch + epochs - 1`, trained by one optimiser and
    learning-rate schedule made fresh when the span starts: the `optimizer` and `scheduler`
    presets named (None: the stage's own) built against the stage's budget with these epochs and
    learning rate `lr` (None: the budget's)."""

    first_epoch: int
    epochs: int
    lr: float | None = None
    optimizer: str | None = None
    scheduler: str | None = None


class Method:
    """Plain training of whatever is trainable; subclasses change one thing each."""

    #: The preset's name, in records and in the analysis's method column.
    name: ClassVar[str] = "method"
    #: Whether `penalty` needs the batch's pre-logits features: the input of the classifier in
    #: the forward pass whose logits give the loss (`models.features.logits_and_features`).
    needs_features: ClassVar[bool] = False

    def check(self, model: nn.Module, context: Context) -> None:
        """Raise a one-line ConfigError when the settings do not fit `model` (before training)."""

    def setup(self, model: nn.Module, context: Context) -> list[nn.Module]:
        """Prepare `model` (freeze, adapt); return the running-stat modules to keep in eval."""
        self.check(model, context)
        return freeze_group_set(model, ())

    def frozen_prefix_depth(self, context: Context) -> int:
        """Leading depth groups frozen for the whole stage (their outputs can be computed once)."""
        return 0

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """The optimiser's parameter groups; `lr_scale` multiplies the budget's learning rate."""
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]

    def spans(self, context: Context) -> list[Span]:
        """The optimisers the stage trains with, in order (fresh ones at each span's start):
        one, the stage's presets over the whole budget, unless a method says otherwise."""
        return [Span(0, context.epochs)]

    def penalty(self, model: nn.Module, features: torch.Tensor | None) -> torch.Tensor | None:
        """An extra loss term for this batch (None: none)."""
        return None

    def on_epoch_start(self, model: nn.Module, epoch: int, frozen: list[nn.Module]) -> list:
        """The frozen running-stat modules from epoch `epoch` on (a phase change updates them)."""
        return frozen

    def phases(self, context: Context) -> list[dict[str, Any]]:
        """How the epochs were spent: `[{"phase", "epochs"}]` (with the parameters each phase
        trained where that changes between phases)."""
        return [{"phase": self.name, "epochs": context.epochs}]

    def settings(self) -> dict[str, Any]:
        """The method's own settings, for its label."""
        return {}


def label(method: Method | None) -> str | None:
    """`name` or `name(key=value, ...)`: one method with its settings, as the analysis keys it."""
    if method is None:
        return None
    settings = ", ".join(f"{k}={v}" for k, v in sorted(method.settings().items()))
    return f"{method.name}({settings})" if settings else method.name


def group_names(model: nn.Module) -> list[str]:
    """The model's depth-group names, stem first, head last."""
    return [name for name, _ in depth_groups(model)]


def check_range(
    setting: str, value: Any, low: float, *, high: float | None = None, above: bool = False
) -> None:
    """A one-line ConfigError unless `low <= value` (`low < value` when `above`; and
    `value < high` when given)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    too_low = number and (value <= low if above else value < low)
    if not number or too_low or (high is not None and value >= high):
        bound = f"{'>' if above else '>='} {low}" + (f" and < {high}" if high is not None else "")
        raise ConfigError(f"method.{setting}={value!r} is out of range; valid: {bound}")


def out_of_groups(setting: str, value: Any, model: nn.Module) -> ConfigError:
    """The error for depth-group indices the model does not have."""
    names = group_names(model)
    return ConfigError(
        f"method.{setting}={value} is out of range for {model_display_name(model)}, which has "
        f"{len(names)} depth groups ({', '.join(names)}); valid indices: 0..{len(names) - 1}"
    )
