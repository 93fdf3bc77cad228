"""Unsupervised domain adaptation: the losses and schedules of the target stage that trains on
labelled source data and the target's unlabelled pool (`losses.py`: gradient reversal and the
DANN schedules of Ganin et al., JMLR 2016; the CORAL loss of Sun & Saenko, ECCV-W 2016)."""

from transferlab.adaptation.losses import (
    DomainClassifier,
    coral_loss,
    dann_lr_factor,
    domain_loss,
    grad_reverse,
    reversal_weight,
)

__all__ = [
    "DomainClassifier",
    "coral_loss",
    "dann_lr_factor",
    "domain_loss",
    "grad_reverse",
    "reversal_weight",
]
