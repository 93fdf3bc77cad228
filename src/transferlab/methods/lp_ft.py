"""Linear probing, then fine-tuning (LP-FT, Kumar et al., ICLR 2022): the classifier trains
alone on the frozen transferred model, then every layer trains, starting from the probed
classifier, so that fine-tuning does not distort the transferred features through a random head.

`lp_ft` is the paper's procedure: the probe has its own learning rate, optimiser and schedule
over its own epochs; fine-tuning then starts a fresh optimiser and schedule at the stage's
(swept) learning rate. `lp_ft_shared` runs both phases in one optimiser and one schedule at the
stage's learning rate. Both spend the stage's budget: `probe_share` of its epochs probe, the
rest fine-tune, so they take the scratch baseline's optimiser steps as every method does.

The probe trains the classifier only (the modules a head reset re-initialises,
`models.weights.classifier_modules`): a neck between the blocks and the classifier (ConvNeXt's
`head.norm`, ViT's `fc_norm`) is transferred and stays frozen, running statistics included.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from transferlab.errors import ConfigError
from transferlab.methods.base import Context, Method, Span, check_range, group_names
from transferlab.models.depth import freeze_group_set, model_display_name, trainable_parameters
from transferlab.models.weights import classifier_modules, classifier_parameters
from transferlab.presets import preset_names


class _ProbeThenTune(Method):
    """The two phases: the first `probe_share` of the epochs train the classifier alone, the
    rest every layer (frozen running statistics follow)."""

    def __init__(self, probe_share: float) -> None:
        self.probe_share = probe_share
        self._probe_epochs = 0
        self._trainable = (0, 0)  # parameters trained in each phase, counted at setup

    def probe_epochs(self, epochs: int) -> int:
        """Epochs of the probe, out of the stage's `epochs`."""
        return round(self.probe_share * epochs)

    def check(self, model: nn.Module, context: Context) -> None:
        check_range("probe_share", self.probe_share, 0, high=1)
        if context.epochs < 2:
            raise ConfigError(
                f"method={self.name} needs at least 2 epochs (a probe, then fine-tuning); "
                f"got train.epochs={context.epochs}"
            )
        probe = self.probe_epochs(context.epochs)
        if not 1 <= probe < context.epochs:
            raise ConfigError(
                f"method.probe_share={self.probe_share} leaves {probe} of {context.epochs} "
                f"epochs to the probe; valid: a share giving 1..{context.epochs - 1} epochs"
            )
        if not classifier_parameters(model):
            raise ConfigError(
                f"method={self.name} needs a classifier to probe; {model_display_name(model)} "
                f"has none (depth groups: {', '.join(group_names(model))})"
            )

    def setup(self, model: nn.Module, context: Context) -> list[nn.Module]:
        self.check(model, context)
        self._probe_epochs = self.probe_epochs(context.epochs)
        frozen = freeze_group_set(model, range(len(group_names(model))))
        probed = classifier_parameters(model)
        for name, param in model.named_parameters():
            param.requires_grad_(name in probed)
        inside = {id(m) for module in classifier_modules(model) for m in module.modules()}
        self._trainable = (trainable_parameters(model), sum(p.numel() for p in model.parameters()))
        return [module for module in frozen if id(module) not in inside]

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
        return [
            {"phase": "linear_probe", "epochs": probe, "trainable_parameters": head},
            {
                "phase": "finetune",
                "epochs": context.epochs - probe,
                "trainable_parameters": everything,
            },
        ]

    def settings(self) -> dict[str, Any]:
        return {"probe_share": self.probe_share}


class LPFT(_ProbeThenTune):
    """LP-FT as the paper runs it: the probe with its own learning rate `probe_lr`, optimiser
    (`probe_optimizer`, a preset of the optimizer group) and schedule (`probe_scheduler`, a
    preset of the scheduler group, over the probe's epochs), weight decay the budget's; then
    fine-tuning with a fresh optimiser and schedule (the stage's presets, over the remaining
    epochs) at the budget's learning rate."""

    name = "lp_ft"

    def __init__(
        self,
        probe_share: float = 0.3,
        probe_lr: float = 0.01,
        probe_optimizer: str = "adamw",
        probe_scheduler: str = "cosine",
    ) -> None:
        super().__init__(probe_share)
        self.probe_lr = probe_lr
        self.probe_optimizer, self.probe_scheduler = probe_optimizer, probe_scheduler

    def check(self, model: nn.Module, context: Context) -> None:
        check_range("probe_lr", self.probe_lr, 0, above=True)
        for setting, group in (("probe_optimizer", "optimizer"), ("probe_scheduler", "scheduler")):
            value, choices = getattr(self, setting), preset_names(group)
            if value not in choices:
                raise ConfigError(
                    f"method.{setting}={value!r} is not a preset of the {group} group; "
                    f"valid choices: {', '.join(choices)}"
                )
        super().check(model, context)

    def spans(self, context: Context) -> list[Span]:
        probe = self.probe_epochs(context.epochs)
        return [
            Span(0, probe, self.probe_lr, self.probe_optimizer, self.probe_scheduler),
            Span(probe, context.epochs - probe),
        ]

    def phases(self, context: Context) -> list[dict[str, Any]]:
        probe, tune = super().phases(context)
        own = {"lr": self.probe_lr, "optimizer": self.probe_optimizer}
        return [{**probe, **own, "scheduler": self.probe_scheduler}, tune]

    def settings(self) -> dict[str, Any]:
        return {
            "probe_share": self.probe_share,
            "probe_lr": self.probe_lr,
            "probe_optimizer": self.probe_optimizer,
            "probe_scheduler": self.probe_scheduler,
        }


class LPFTShared(_ProbeThenTune):
    """Both phases in one optimiser and one schedule over the whole budget, at the budget's
    learning rate (frozen weights get no gradients, so the probe leaves them alone)."""

    name = "lp_ft_shared"

    def __init__(self, probe_share: float = 0.5) -> None:
        super().__init__(probe_share)

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        return [{"params": list(model.parameters()), "lr_scale": 1.0}]
