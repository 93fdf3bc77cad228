"""Run identity: a run is the hash of the settings that can change its result (as in DomainBed).

Settings that cannot matter are normalised away, so grid points that collapse to the same run
(a scratch run at every freeze depth, say) share one id and are run once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

RUN_ID_LENGTH = 16
# Where a dataset is stored does not change what it is.
LOCATION_KEYS = ("root", "download")


def _plain(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def dataset_identity(spec: Any) -> dict[str, Any]:
    """A dataset spec with every default filled in and its location dropped."""
    from transferlab.data import normalize_spec

    return {k: v for k, v in normalize_spec(_plain(spec)).items() if k not in LOCATION_KEYS}


def _training_settings(cfg: Mapping[str, Any], budget: Mapping[str, Any]) -> dict[str, Any]:
    """What shapes the optimisation of one stage: budget, optimiser, schedule, precision."""
    return {
        "budget": dict(budget),
        "optimizer": cfg.get("optimizer"),
        "scheduler": cfg.get("scheduler"),
        "precision": (cfg.get("trainer") or {}).get("precision"),
    }


def normalized_run_config(cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """The settings that identify a run, with the ones that cannot matter removed.

    `cfg` is a stage config (see `transferlab.training.stages`): `stage` is `source` or
    `target`, `target` the dataset trained on. Logging, paths, study name and hardware are
    excluded: they do not change what is learned.
    """
    cfg = _plain(cfg)
    stage = cfg["stage"]
    init = cfg["init"]
    ident: dict[str, Any] = {
        "stage": stage,
        "model": cfg["model"],
        "image_size": cfg["image_size"],
        "channels": cfg["data"]["channels"],
        "split_seed": cfg["split_seed"],
        "seed": cfg["seed"],
        "dataset": dataset_identity(cfg["target"]),
        "target_size": cfg["target_size"],
        "init": init,
        "training": _training_settings(cfg, cfg["train"]),
    }
    if stage == "target":
        ident["freeze_depth"] = 0 if init == "scratch" else cfg["freeze_depth"]
        if init == "source":
            # The source stage's own id covers the source data, model and pre-training settings.
            ident["source_run_id"] = cfg["source_run_id"]
        if init == "file":
            ident["init_path"] = cfg["init_path"]
    return ident


def run_id(cfg: Mapping[str, Any] | DictConfig) -> str:
    """Stable id of a run: the leading hex digits of sha256 over its normalised config."""
    text = json.dumps(normalized_run_config(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:RUN_ID_LENGTH]
