"""Domain adaptation methods, presets of the `method` group like the fine-tuning methods: a
target stage that trains on the labelled source data and the target's unlabelled training pool
(plus `target_size` labelled target examples, when given: semi-supervised adaptation).

Every adaptation method trains the same stage on the same source batches with the same budget
and differs only in its extra loss, so each is paired with `source_only` (no extra loss, the
target pool never read) from the same source model and seed:

* `source_only`: the classification loss alone (on source, and on the labelled target examples
  when there are any);
* `dann`: plus the domain classifier's loss through the gradient reversal layer (Ganin et al.
  2016), its weight and learning rate on the paper's schedules;
* `coral`: plus the CORAL distance between the source and target feature covariances (Sun &
  Saenko 2016).

`selection` says which validation set chooses the epoch (and, in the analysis, the learning
rate): `source`, the source's validation set (DomainBed's training-domain validation, needing
no target label), or `oracle`, the target's validation set, labels an unsupervised adaptation
would not have; an oracle arm is named so and is only paired with an oracle arm.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from transferlab.adaptation.losses import (
    GAMMA,
    LR_ALPHA,
    LR_BETA,
    DomainClassifier,
    coral_loss,
    dann_lr_factor,
    domain_loss,
    reversal_weight,
)
from transferlab.errors import choice_error
from transferlab.methods.base import Context, Method, Span, check_range

#: Which validation set chooses the epoch: the source's (no target label), or the target's.
SELECTIONS = ("source", "oracle")


class Adaptation(Method):
    """Full fine-tuning on source and target batches together, plus `loss` (none here)."""

    name: ClassVar[str] = "adaptation"
    #: Whether the method reads the target's unlabelled pool.
    reads_target_pool: ClassVar[bool] = True

    def __init__(self, selection: str = "source", unlabelled_size: int | None = None) -> None:
        self.selection = selection
        self.unlabelled_size = unlabelled_size

    def check(self, model: nn.Module, context: Context) -> None:
        if self.selection not in SELECTIONS:
            raise choice_error("method.selection", self.selection, SELECTIONS)
        if self.unlabelled_size is not None:
            check_range("unlabelled_size", self.unlabelled_size, 0, above=True)

    def heads(self, features: int) -> nn.Module:
        """Modules trained beside the model (a domain classifier), never handed over."""
        return nn.ModuleDict()

    def loss(
        self, heads: nn.Module, source: torch.Tensor, target: torch.Tensor, progress: float
    ) -> torch.Tensor | None:
        """The adaptation loss of a source and a target batch of features at training
        progress `progress` in [0, 1] (None: none)."""
        return None

    def lr_factor(self, progress: float) -> float:
        """What multiplies every learning rate at training progress `progress`."""
        return 1.0

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"selection": self.selection}
        if self.unlabelled_size is not None:
            out["unlabelled_size"] = self.unlabelled_size
        return out


class SourceOnly(Adaptation):
    """No adaptation: the source model trained on, for the same budget, on source labels (and
    any labelled target examples) alone; the baseline every adaptation method is paired with."""

    name = "source_only"
    reads_target_pool = False

    def settings(self) -> dict[str, Any]:
        return {"selection": self.selection}


class DANN(Adaptation):
    """Domain-adversarial training (Ganin et al., JMLR 2016): a domain classifier with one
    hidden layer of `hidden` units on the features, through a gradient reversal layer whose
    weight is `weight * (2 / (1 + exp(-gamma p)) - 1)`; with `anneal_lr`, every learning rate
    is multiplied by 1 / (1 + lr_alpha p)^lr_beta (the paper's schedule, replacing the
    scheduler preset)."""

    name = "dann"

    def __init__(
        self,
        weight: float = 1.0,
        gamma: float = GAMMA,
        anneal_lr: bool = True,
        lr_alpha: float = LR_ALPHA,
        lr_beta: float = LR_BETA,
        hidden: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.weight, self.gamma, self.anneal_lr = weight, gamma, anneal_lr
        self.lr_alpha, self.lr_beta, self.hidden = lr_alpha, lr_beta, hidden

    def check(self, model: nn.Module, context: Context) -> None:
        super().check(model, context)
        check_range("weight", self.weight, 0)
        check_range("gamma", self.gamma, 0)
        check_range("lr_alpha", self.lr_alpha, 0)
        check_range("lr_beta", self.lr_beta, 0)
        check_range("hidden", self.hidden, 0, above=True)

    def heads(self, features: int) -> nn.Module:
        return DomainClassifier(features, int(self.hidden))

    def loss(
        self, heads: nn.Module, source: torch.Tensor, target: torch.Tensor, progress: float
    ) -> torch.Tensor:
        weight = self.weight * reversal_weight(progress, self.gamma)
        return domain_loss(heads, source, target, weight)

    def lr_factor(self, progress: float) -> float:
        return dann_lr_factor(progress, self.lr_alpha, self.lr_beta) if self.anneal_lr else 1.0

    def spans(self, context: Context) -> list[Span]:
        """One optimiser at a constant rate that `lr_factor` anneals, when annealing."""
        return [Span(0, context.epochs, scheduler="none" if self.anneal_lr else None)]

    def settings(self) -> dict[str, Any]:
        out = {"weight": self.weight, "gamma": self.gamma, "hidden": self.hidden}
        if self.anneal_lr:
            out.update(lr_alpha=self.lr_alpha, lr_beta=self.lr_beta)
        else:
            out["anneal_lr"] = False
        return {**out, **super().settings()}


class CORAL(Adaptation):
    """Deep CORAL (Sun & Saenko, ECCV-W 2016): `weight` times the distance between the source
    and target batches' feature covariances."""

    name = "coral"

    def __init__(self, weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weight = weight

    def check(self, model: nn.Module, context: Context) -> None:
        super().check(model, context)
        check_range("weight", self.weight, 0)

    def loss(
        self, heads: nn.Module, source: torch.Tensor, target: torch.Tensor, progress: float
    ) -> torch.Tensor:
        return self.weight * coral_loss(source, target)

    def settings(self) -> dict[str, Any]:
        return {"weight": self.weight, **super().settings()}


def is_adaptation(method: Any) -> bool:
    """Whether a method (built, or its preset) trains on source and target together."""
    if isinstance(method, Method) or not method or "_target_" not in method:
        return isinstance(method, Adaptation)
    from hydra.utils import get_object

    try:
        target = get_object(str(method["_target_"]))
    except Exception:  # noqa: BLE001 - an unknown target is reported by the config checks
        return False
    return isinstance(target, type) and issubclass(target, Adaptation)
