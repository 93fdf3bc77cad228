"""The building blocks of domain adaptation checked against values computed by hand on tiny
tensors: gradient reversal, DANN's schedules and domain loss, the CORAL loss."""

from __future__ import annotations

import math

import pytest
import torch

from transferlab.adaptation import (
    DomainClassifier,
    coral_loss,
    dann_lr_factor,
    domain_loss,
    grad_reverse,
    reversal_weight,
)


def test_gradient_reversal_is_identity_forward_and_flips_and_scales_backward():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x.detach())
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    # d/dx of sum(c * x) is c; reversed and scaled by 0.5: -0.5 c
    assert torch.equal(x.grad, torch.tensor([-0.5, -1.0, -1.5]))


def test_dann_schedules_are_the_papers():
    assert reversal_weight(0.0) == 0.0
    assert reversal_weight(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert reversal_weight(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)  # 0.98661...
    assert dann_lr_factor(0.0) == 1.0
    assert dann_lr_factor(1.0) == pytest.approx(11**-0.75)  # 0.16548...


def test_domain_loss_is_the_binary_cross_entropy_of_source_zero_and_target_one():
    classifier = DomainClassifier(2, hidden=2)
    with torch.no_grad():  # a classifier whose logit is the first feature
        classifier.net[0].weight.copy_(torch.eye(2))
        classifier.net[0].bias.zero_()
        classifier.net[2].weight.copy_(torch.tensor([[1.0, 0.0]]))
        classifier.net[2].bias.zero_()
    source = torch.tensor([[1.0, 0.0]])  # logit 1, label 0: -log(1 - sigmoid(1))
    target = torch.tensor([[2.0, 5.0]])  # logit 2, label 1: -log(sigmoid(2))
    sigmoid = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    by_hand = (-math.log(1 - sigmoid(1.0)) - math.log(sigmoid(2.0))) / 2
    assert domain_loss(classifier, source, target, 1.0).item() == pytest.approx(by_hand)


def test_domain_loss_trains_the_features_against_the_domain_classifier():
    """Through the reversal layer the features get the negated (weighted) gradient of the loss
    the domain classifier gets."""
    classifier = DomainClassifier(3, hidden=4)
    source = torch.randn(4, 3, requires_grad=True)
    target = torch.randn(4, 3)
    domain_loss(classifier, source, target, 0.3).backward()
    reversed_grad = source.grad.clone()
    source.grad = None
    domain_loss(classifier, source, target, -1.0).backward()  # a weight of -1: plain gradient
    assert torch.allclose(reversed_grad, -0.3 * source.grad)


def test_coral_loss_is_the_scaled_distance_of_covariances():
    source = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # covariance [[2, 2], [2, 2]]
    target = torch.tensor([[0.0, 0.0], [0.0, 2.0]])  # covariance [[0, 0], [0, 2]]
    # |[[2, 2], [2, 0]]|_F^2 = 4 + 4 + 4 + 0 = 12; / (4 d^2) = 12 / 16
    assert coral_loss(source, target).item() == pytest.approx(0.75)
    assert coral_loss(source, source).item() == 0.0
