"""Derive the two stage configs of a run from the composed config, and check them up front.

A run config names a source and a target. The *source stage* trains on the source with the
`pretrain` budget; the *target stage* trains on the target with the `train` budget, starting
from the source checkpoint (`init=source`), from scratch, or from hub/file weights.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from transferlab.data import build_splits, normalize_spec, stratified_subset, validate_spec
from transferlab.errors import ConfigError, choice_error
from transferlab.models import INIT_CHOICES, validate_model

STAGES = ("source", "target")


def _copy(cfg: DictConfig) -> DictConfig:
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(copy, False)
    return copy


def source_stage_config(cfg: DictConfig) -> DictConfig:
    """The source stage: train a fresh model on the source with the pre-training budget."""
    stage = _copy(cfg)
    stage.stage = "source"
    stage.target = cfg.source
    stage.train = cfg.pretrain
    if cfg.pretrain.get("seed") is not None:  # one source model shared by every run seed
        stage.seed = cfg.pretrain.seed
    stage.target_size = cfg.source_size
    stage.init = "scratch"
    stage.init_path = None
    stage.freeze_depth = 0
    stage.source = None
    stage.source_run_id = None
    return stage


def target_stage_config(cfg: DictConfig, source_run_id: str | None) -> DictConfig:
    """The target stage; settings that cannot matter for this init are normalised away."""
    stage = _copy(cfg)
    stage.stage = "target"
    stage.source_run_id = source_run_id
    if cfg.init != "source":
        stage.source = None
    if cfg.init == "scratch":
        stage.freeze_depth = 0
    if cfg.init != "file":
        stage.init_path = None
    return stage


def _check_budget(name: str, budget: Any) -> None:
    if not budget.lr > 0:
        raise ConfigError(f"{name}.lr must be a positive number, got {budget.lr!r}")
    if budget.weight_decay < 0:
        raise ConfigError(f"{name}.weight_decay must be >= 0, got {budget.weight_decay!r}")
    for key in ("epochs", "batch_size"):
        if int(budget[key]) < 1:
            raise ConfigError(f"{name}.{key} must be a positive integer, got {budget[key]!r}")


def _check_data(cfg: DictConfig, spec: Any, size: int | None, seed: int) -> None:
    """Build (and cache) the splits and draw the subset, so data errors come before training."""
    splits = build_splits(
        spec, image_size=cfg.image_size, channels=cfg.data.channels, split_seed=cfg.split_seed
    )
    stratified_subset(
        splits.train.labels, size, seed, classes=splits.classes, dataset=splits.description
    )


def _check_shared_base(source: Any, target: Any) -> None:
    """Views of one base dataset must split it alike, or source training could see target test."""
    source, target = normalize_spec(source), normalize_spec(target)
    if source["name"] != target["name"]:
        return
    for key in ("val_fraction", "test_fraction"):
        if source.get(key) != target.get(key):
            raise ConfigError(
                f"source and target are both views of {source['name']!r} but split it "
                f"differently ({key} {source.get(key)} vs {target.get(key)}); use the same {key}"
            )


def preflight(cfg: DictConfig) -> int:
    """Check every setting of a run before any training; return the model's stage count.

    Raises ConfigError (one line: the bad value and the valid choices) on the first problem.
    """
    if cfg.init not in INIT_CHOICES:
        raise choice_error("init", cfg.init, INIT_CHOICES)
    if cfg.init == "source" and cfg.get("source") is None:
        raise ConfigError("init=source needs a source dataset (data@source=<preset>)")
    validate_spec(cfg.target)
    if cfg.init == "source":
        validate_spec(cfg.source)
        _check_shared_base(cfg.source, cfg.target)
    _check_budget("train", cfg.train)
    if cfg.init == "source":
        _check_budget("pretrain", cfg.pretrain)
    stages = validate_model(
        cfg.model.name,
        freeze_depth=cfg.freeze_depth if cfg.init != "scratch" else 0,
        init=cfg.init if cfg.init != "source" else "scratch",
        init_path=cfg.init_path,
        **cfg.model.kwargs,
    )
    _check_data(cfg, cfg.target, cfg.target_size, cfg.seed)
    if cfg.init == "source":
        _check_data(cfg, cfg.source, cfg.source_size, cfg.seed)
    return stages
