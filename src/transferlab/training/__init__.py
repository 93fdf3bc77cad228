"""Training: the LightningModule, one stage's fit, and a whole run (`train`).

Names are imported on first use, so that checking a config (`preflight`) or skipping a finished
run does not pay for importing Lightning.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "TransferClassifier": "transferlab.training.module",
    "ensure_source": "transferlab.training.run",
    "run_stage": "transferlab.training.run",
    "train": "transferlab.training.run",
    "preflight": "transferlab.training.stages",
    "source_stage_config": "transferlab.training.stages",
    "target_stage_config": "transferlab.training.stages",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'transferlab.training' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
