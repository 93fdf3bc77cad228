"""Keep what a stage trained: its selected weights in a checkpoint file (a source stage's
always, for its target runs; a target stage's with `save_weights=true`, for re-evaluation with
`transferlab-eval`) and, when the stage logs to W&B, as a model artifact named by its run id
(a source stage's only with `logger.wandb.log_source_checkpoint=true`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from transferlab._helpers import first_line
from transferlab.models import save_checkpoint
from transferlab.objectives import is_supervised

log = logging.getLogger(__name__)

#: A source stage's checkpoint, in its cache folder.
SOURCE_CHECKPOINT = "model.pt"
#: A target stage's kept weights, in its run folder.
TARGET_WEIGHTS = "weights.pt"
#: The W&B artifact type of kept weights.
ARTIFACT_TYPE = "model"


def weights_path(stage_cfg: DictConfig, run_dir: Path, checkpoint_dir: Path | None) -> Path | None:
    """Where this stage's selected weights go, or None when they are not kept."""
    if checkpoint_dir is not None:
        return checkpoint_dir / SOURCE_CHECKPOINT
    if stage_cfg.stage == "target" and stage_cfg.get("save_weights"):
        return run_dir / TARGET_WEIGHTS
    return None


def keep_weights(stage_cfg: DictConfig, result: Any, splits: Any, path: Path) -> None:
    """Write the stage's selected weights with what is needed to rebuild and feed the model
    (`models.checkpoint`), then log them to W&B where that is asked for."""
    objective = (
        OmegaConf.select(stage_cfg, "budget.objective") if stage_cfg.stage == "source" else None
    )
    save_checkpoint(
        result.model,
        path,
        model_name=stage_cfg.model.name,
        model_kwargs=OmegaConf.to_container(stage_cfg.model.kwargs),
        # a model trained without labels has no classifier: no classes for a target to match
        classes=tuple(splits.classes) if is_supervised(objective) else (),
        image_size=splits.image_size,
        in_chans=splits.channels,
        input_stats=result.input_stats,
    )
    log_artifact(stage_cfg, path)


def log_artifact(stage_cfg: DictConfig, path: Path) -> bool:
    """Log `path` to the stage's W&B run as a model artifact named by its run id; False when
    the stage does not log to W&B (or, for a source stage, was not asked to; W&B never
    imported: a run without the wandb logger needs no wandb installed)."""
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return False
    if stage_cfg.stage == "source" and not OmegaConf.select(
        stage_cfg, "logger.wandb.log_source_checkpoint", default=False
    ):
        return False
    rid = str(stage_cfg.run.id)
    artifact = wandb.Artifact(
        rid, type=ARTIFACT_TYPE, metadata={"run_id": rid, "stage": str(stage_cfg.stage)}
    )
    try:
        artifact.add_file(str(path))
        wandb.run.log_artifact(artifact)
    except Exception as exc:  # noqa: BLE001 - the weights are on disk: a warning, not a failure
        log.warning("weights of %s not logged to W&B: %s", rid, first_line(exc))
        return False
    return True
