"""The pieces of DANN and Deep CORAL, each small enough to check by hand.

DANN (Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016): a domain
classifier on the features, trained to tell source from target through a gradient reversal
layer, so the feature extractor is trained to make them indistinguishable. The reversal weight
grows from 0 to 1 over training, lambda_p = 2 / (1 + exp(-gamma p)) - 1 with gamma = 10 and p the
share of training done, and the learning rate is annealed as mu_p = mu_0 / (1 + alpha p)^beta
with alpha = 10 and beta = 0.75 (the paper's section 5.2.2).

Deep CORAL (Sun & Saenko, ECCV Workshops 2016): the squared Frobenius distance between the
source and target feature covariances, scaled by 1 / (4 d^2).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

#: The paper's schedule constants (Ganin et al. 2016, section 5.2.2).
GAMMA, LR_ALPHA, LR_BETA = 10.0, 10.0, 0.75


class _Reverse(torch.autograd.Function):
    """Identity forward; the gradient multiplied by `-weight` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


def grad_reverse(x: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """`x` unchanged, whose gradient flows back flipped and scaled by `weight`."""
    return _Reverse.apply(x, float(weight))


def reversal_weight(progress: float, gamma: float = GAMMA) -> float:
    """DANN's lambda_p = 2 / (1 + exp(-gamma p)) - 1 at training progress p in [0, 1]."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def dann_lr_factor(progress: float, alpha: float = LR_ALPHA, beta: float = LR_BETA) -> float:
    """DANN's learning-rate factor 1 / (1 + alpha p)^beta at training progress p."""
    return 1.0 / (1.0 + alpha * progress) ** beta


class DomainClassifier(nn.Module):
    """Source (0) or target (1), from features that passed the gradient reversal layer: a
    perceptron with one hidden layer (the paper's uses two of 1024 units on ImageNet-scale
    features; `hidden` scales it to small models)."""

    def __init__(self, features: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor, weight: float) -> torch.Tensor:
        return self.net(grad_reverse(features, weight)).squeeze(-1)


def domain_loss(
    classifier: DomainClassifier, source: torch.Tensor, target: torch.Tensor, weight: float
) -> torch.Tensor:
    """The domain classifier's binary cross-entropy on a source and a target batch of features
    (equal weight per example)."""
    logits = classifier(torch.cat([source, target]), weight)
    domains = torch.cat([source.new_zeros(len(source)), target.new_ones(len(target))])
    return nn.functional.binary_cross_entropy_with_logits(logits.float(), domains.float())


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|C_S - C_T|_F^2 / (4 d^2) of the (unbiased) feature covariances of two batches (n, d)."""
    d = source.shape[1]
    return (_covariance(source) - _covariance(target)).pow(2).sum() / (4 * d * d)


def _covariance(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    centred = x - x.mean(dim=0, keepdim=True)
    return centred.T @ centred / (len(x) - 1)
