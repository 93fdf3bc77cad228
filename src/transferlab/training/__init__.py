"""Training: the LightningModule, one stage's fit, and a whole run (`train`)."""

from transferlab.training.module import TransferClassifier
from transferlab.training.run import ensure_source, run_stage, train
from transferlab.training.stages import preflight, source_stage_config, target_stage_config

__all__ = [
    "TransferClassifier",
    "ensure_source",
    "preflight",
    "run_stage",
    "source_stage_config",
    "target_stage_config",
    "train",
]
