"""Unsupervised domain adaptation: a target stage that trains on labelled source data and the
target's unlabelled pool. `methods.py`: the `method` presets (source_only, dann, coral);
`losses.py`: gradient reversal and the DANN schedules of Ganin et al. (JMLR 2016), the CORAL
loss of Sun & Saenko (ECCV-W 2016); `data.py`: what such a stage reads."""

from transferlab.adaptation.losses import (
    DomainClassifier,
    coral_loss,
    dann_lr_factor,
    domain_loss,
    grad_reverse,
    reversal_weight,
)
from transferlab.adaptation.methods import (
    CORAL,
    DANN,
    SELECTIONS,
    Adaptation,
    SourceOnly,
    is_adaptation,
)

__all__ = [
    "CORAL",
    "DANN",
    "SELECTIONS",
    "Adaptation",
    "SourceOnly",
    "is_adaptation",
    "DomainClassifier",
    "coral_loss",
    "dann_lr_factor",
    "domain_loss",
    "grad_reverse",
    "reversal_weight",
]
