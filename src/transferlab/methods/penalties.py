"""Methods that add a regulariser to the loss of full fine-tuning: L2-SP and BSS."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from transferlab.errors import ConfigError
from transferlab.methods.base import Context, Method, check_range, group_names
from transferlab.models.weights import classifier_modules, classifier_parameters


class L2SP(Method):
    """L2-SP (Li et al., ICML 2018): `alpha / 2 * |w - w_start|^2` over the transferred weights
    (every weight the stage started from: a neck before the classifier, e.g. ConvNeXt's
    `head.norm`, and the classifier too when it was kept) plus `beta / 2 * |w|^2` over the new
    ones (a re-initialised classifier, `models.weights.classifier_modules`). The budget's weight
    decay still applies through the optimiser: set `train.weight_decay=0` for the paper's
    setting."""

    name = "l2sp"

    def __init__(self, alpha: float = 0.01, beta: float = 0.01) -> None:
        self.alpha, self.beta = alpha, beta
        self._start: dict[str, torch.Tensor] = {}
        self._new: set[str] = set()

    def check(self, model: nn.Module, context: Context) -> None:
        check_range("alpha", self.alpha, 0)
        check_range("beta", self.beta, 0)

    def setup(self, model: nn.Module, context: Context) -> list[nn.Module]:
        frozen = super().setup(model, context)
        self._new = classifier_parameters(model) if context.head_reset else set()
        self._start = {
            name: param.detach().clone()
            for name, param in model.named_parameters()
            if name not in self._new
        }
        return frozen

    def penalty(self, model: nn.Module, features: torch.Tensor | None) -> torch.Tensor:
        near = far = None
        for name, param in model.named_parameters():
            if name in self._new:
                term = param.pow(2).sum()
                far = term if far is None else far + term
                continue
            start = self._start[name]
            if start.device != param.device:  # moved with the model (once)
                start = self._start[name] = start.to(param.device)
            term = (param - start).pow(2).sum()
            near = term if near is None else near + term
        zero = next(model.parameters()).new_zeros(())
        return self.alpha / 2 * (near if near is not None else zero) + self.beta / 2 * (
            far if far is not None else zero
        )

    def settings(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta}


class BSS(Method):
    """Batch Spectral Shrinkage (Chen et al., NeurIPS 2019): `eta` times the sum of the `k`
    smallest squared singular values of the batch's feature matrix, which keeps the
    fine-tuned features from leaning on source-specific directions. The features are the
    classifier's input in the forward pass whose logits give the loss (one pass: the same
    pooling and dropout mask as those logits)."""

    name = "bss"
    needs_features = True

    def __init__(self, eta: float = 0.001, k: int = 1) -> None:
        self.eta, self.k = eta, k

    def check(self, model: nn.Module, context: Context) -> None:
        check_range("eta", self.eta, 0)
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"method.k={self.k!r} is out of range; valid: an integer >= 1")
        if len(classifier_modules(model)) != 1:
            raise ConfigError(
                f"method=bss needs a model with one classifier (timm's get_classifier()) whose "
                f"input is the features; {type(model).__name__} has "
                f"{len(classifier_modules(model))} ({', '.join(group_names(model))})"
            )

    def penalty(self, model: nn.Module, features: torch.Tensor | None) -> torch.Tensor:
        assert features is not None
        values = torch.linalg.svdvals(features.float().flatten(1))  # descending
        return self.eta * values[-min(self.k, values.numel()) :].pow(2).sum()

    def settings(self) -> dict[str, Any]:
        return {"eta": self.eta, "k": self.k}
