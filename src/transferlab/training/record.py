"""A stage's record: the fields known before training, then its outcome (see store.schema)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from transferlab.data import describe
from transferlab.store import RunRecord, stage_identity
from transferlab.store.provenance import cluster_job, git_commit, now, package_versions

if TYPE_CHECKING:  # fit imports Lightning, which checking and skipping a run do not need
    from transferlab.training.fit import StageResult


def dataset_entry(spec: Any) -> dict[str, Any] | None:
    """`{name, description, spec}` of a dataset spec (None for no dataset)."""
    if spec is None:
        return None
    plain = OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else spec
    return {"name": plain["name"], "description": describe(plain), "spec": plain}


def source_entry(stage_cfg: DictConfig) -> dict[str, Any] | None:
    """The source dataset's entry, with the objective it was pre-trained on when that did not
    read its labels (`pretrain/objective`; supervised, the default, is not named)."""
    entry = dataset_entry(stage_cfg.get("source"))
    node = OmegaConf.select(stage_cfg, "pretrain.objective")
    from transferlab.objectives import is_supervised, objective_label

    if entry is not None and not is_supervised(node):
        from hydra.utils import instantiate

        entry["objective"] = objective_label(instantiate(node))
    return entry


def method_label(stage_cfg: DictConfig) -> str | None:
    """The stage's fine-tuning method with its settings (None: a source stage or scratch run)."""
    node = stage_cfg.get("method")
    if not node:
        return None
    from hydra.utils import instantiate

    from transferlab.methods import label

    return label(instantiate(node))


def base_fields(stage_cfg: DictConfig, rid: str) -> dict[str, Any]:
    """The record fields known before training: settings, identity, provenance."""
    budget, is_target = stage_cfg.budget, stage_cfg.stage == "target"
    return {
        "run_id": rid,
        "study": stage_cfg.study,
        "stage": stage_cfg.stage,
        "init": stage_cfg.init,
        "model": stage_cfg.model.name,
        "freeze_depth": int(stage_cfg.freeze_depth),
        "method": method_label(stage_cfg),
        "source": source_entry(stage_cfg),
        "target": dataset_entry(stage_cfg.target) if is_target else None,
        "source_size": stage_cfg.get("source_size"),
        "target_size": stage_cfg.target_size if is_target else None,
        "lr": float(budget.lr),
        "weight_decay": float(budget.weight_decay),
        "epochs": int(budget.epochs),
        "batch_size": int(budget.batch_size),
        "seed": int(stage_cfg.seed),
        "split_seed": int(stage_cfg.split_seed),
        "val_protocol": stage_cfg.get("val_protocol", "pool") if is_target else "pool",
        "source_run_id": stage_cfg.get("source_run_id"),
        "source_checkpoint": None,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "cluster_job": cluster_job(),
        "identity": stage_identity(stage_cfg),
        "config": OmegaConf.to_container(stage_cfg, resolve=True),
        "started_at": now(),
    }


def outcome_fields(result: StageResult | None) -> dict[str, Any]:
    """The record fields a finished fit adds (none when it crashed before finishing)."""
    if result is None:
        return {}
    return {
        "status": result.status,
        "error": result.error,
        "num_depth_groups": result.num_depth_groups,
        "trainable_parameters": result.trainable_parameters,
        "train_examples": result.train_examples,
        "val_examples": result.val_examples,
        "num_classes": result.num_classes,
        "head_reset": result.head_reset,
        "input_norm": {"mean": list(result.input_stats[0]), "std": list(result.input_stats[1])},
        "best_epoch": result.best_epoch,
        "metrics": {"val": result.val, "test": result.test},
        "val_curve": result.val_curve,
        "train_samples_per_s": result.train_samples_per_s,
        "phases": result.phases,
        "adaptation": result.adaptation,
    }


def finish(base: dict[str, Any], outcome: dict[str, Any], wall_time_s: float) -> RunRecord:
    """The whole record of a stage once it ended."""
    return RunRecord(**{**base, **outcome, "wall_time_s": wall_time_s, "finished_at": now()})
