"""One transfer run end to end: checks, the (cached) source stage, the target stage, records."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

from transferlab.data import build_splits, clear_cache, describe, stratified_subset
from transferlab.errors import ConfigError
from transferlab.models import load_checkpoint, save_checkpoint
from transferlab.store import (
    RECORD_SCHEMA,
    RecordError,
    ResultsStore,
    atomic_write_json,
    read_record,
    run_id,
)
from transferlab.training.stages import preflight, source_stage_config, target_stage_config

log = logging.getLogger(__name__)

PACKAGES = ("torch", "lightning", "timm", "torchmetrics", "hydra-core", "wandb", "transferlab")
SOURCE_CHECKPOINT = "model.pt"


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def process_rank() -> int:
    """Rank of this process in a multi-process run (0 when alone), as Lightning reads it.

    Read from the environment so that checks and skips need not import Lightning.
    """
    for name in RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def git_commit() -> str | None:
    """The commit of the code that ran, when it runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _dataset_entry(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    plain = OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else spec
    return {"name": plain["name"], "description": describe(plain), "spec": plain}


def _base_record(stage_cfg: DictConfig, rid: str) -> dict[str, Any]:
    """The fields of a record known before training."""
    budget = stage_cfg.train
    return {
        "schema": RECORD_SCHEMA,
        "run_id": rid,
        "study": stage_cfg.study,
        "stage": stage_cfg.stage,
        "init": stage_cfg.init,
        "model": stage_cfg.model.name,
        "freeze_depth": int(stage_cfg.freeze_depth),
        "source": _dataset_entry(stage_cfg.get("source")),
        "target": _dataset_entry(stage_cfg.target),
        "target_size": stage_cfg.target_size,
        "lr": float(budget.lr),
        "weight_decay": float(budget.weight_decay),
        "epochs": int(budget.epochs),
        "batch_size": int(budget.batch_size),
        "seed": int(stage_cfg.seed),
        "split_seed": int(stage_cfg.split_seed),
        "source_run_id": stage_cfg.get("source_run_id"),
        "source_checkpoint": None,
        "checkpoint": None,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "config": OmegaConf.to_container(stage_cfg, resolve=True),
    }


def _with_run_info(stage_cfg: DictConfig, rid: str, run_dir: Path) -> DictConfig:
    """Fill the `run` node that logger configs interpolate (id, name, folder, tags)."""
    source = stage_cfg.get("source")
    tags = [
        f"stage:{stage_cfg.stage}",
        f"init:{stage_cfg.init}",
        f"target:{describe(stage_cfg.target)}",
        f"freeze_depth:{stage_cfg.freeze_depth}",
    ]
    if source is not None:
        tags.append(f"source:{describe(source)}")
    stage_cfg.run = {
        "id": rid,
        "name": f"{stage_cfg.stage}-{rid}",
        "dir": str(run_dir),
        "tags": tags,
    }
    return stage_cfg


def _finish_loggers() -> None:
    """Close the W&B run so the next job in this process starts its own."""
    import wandb

    if wandb.run is not None:
        wandb.finish()


def run_stage(
    stage_cfg: DictConfig,
    store: ResultsStore,
    *,
    init_path: str | None = None,
    checkpoint_dir: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one stage and write its record; a crash is recorded as `failed`, not raised.

    `checkpoint_dir` receives the selected weights (source stages); `extra` goes into the record.
    """
    rid = run_id(stage_cfg)
    run_dir = store.run_dir(rid)
    run_dir.mkdir(parents=True, exist_ok=True)
    stage_cfg = _with_run_info(stage_cfg, rid, run_dir)
    record = {**_base_record(stage_cfg, rid), **(extra or {}), "started_at": _now()}
    started = time.perf_counter()
    from transferlab.training.fit import StageResult, fit_stage  # imports Lightning

    result: StageResult | None = None
    try:
        splits = build_splits(
            stage_cfg.target,
            image_size=stage_cfg.image_size,
            channels=stage_cfg.data.channels,
            split_seed=stage_cfg.split_seed,
        )
        subset = stratified_subset(
            splits.train.labels,
            stage_cfg.target_size,
            stage_cfg.seed,
            classes=splits.classes,
            dataset=splits.description,
        )
        result = fit_stage(
            stage_cfg, splits, splits.train.subset(subset), run_dir, init_path=init_path
        )
        record.update(status=result.status, error=result.error)
        if result.status == "completed" and checkpoint_dir is not None:
            path = checkpoint_dir / SOURCE_CHECKPOINT
            record["checkpoint"] = store.relative(path)
            if result.is_global_zero:
                save_checkpoint(
                    result.model,
                    path,
                    model_name=stage_cfg.model.name,
                    model_kwargs=OmegaConf.to_container(stage_cfg.model.kwargs),
                    classes=tuple(splits.classes),
                    image_size=splits.image_size,
                    in_chans=splits.channels,
                )
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a crashed run is recorded, and the sweep goes on
        log.exception("run %s failed", rid)
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        _finish_loggers()
    if result is not None:
        record.update(
            num_stages=result.num_stages,
            train_examples=result.train_examples,
            num_classes=result.num_classes,
            best_epoch=result.best_epoch,
            metrics={"val": result.val, "test": result.test},
            val_curve=result.val_curve,
            train_samples_per_s=result.train_samples_per_s,
            head_reset=result.head_reset,
        )
    record["wall_time_s"] = time.perf_counter() - started
    record["finished_at"] = _now()
    if result is None or result.is_global_zero:
        store.write(record)
    _barrier()
    return record


def _barrier() -> None:
    """Wait for every process of a multi-process (DDP) run, so files written by rank 0 exist."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


@contextmanager
def process_lock(path: Path) -> Iterator[None]:
    """A file lock between jobs, taken by the first process of a job only.

    Lightning's `ddp` strategy re-executes the command in child processes that must join the
    parent's training rather than wait for the parent's lock (a deadlock).
    """
    if process_rank() != 0:
        yield
        return
    with FileLock(str(path)):
        yield


def _cached_source(rid: str, cache_dir: Path) -> dict[str, Any] | None:
    """A cached source outcome whose record (and checkpoint) are whole; else None (train again).

    A diverged source is cached too, so its target runs do not each train it again.
    """
    record_path, checkpoint = cache_dir / "record.json", cache_dir / SOURCE_CHECKPOINT
    try:
        record = read_record(record_path, run_id=rid) if record_path.exists() else None
        if record is not None and record["status"] == "completed":
            load_checkpoint(checkpoint)
    except (RecordError, ConfigError) as exc:
        log.warning("cached source %s is damaged (%s); training it again", rid, exc)
        return None
    return record if record is not None and record["status"] != "failed" else None


def ensure_source(cfg: DictConfig, store: ResultsStore, cache_dir: Path | None = None) -> dict:
    """The source stage's record: reused from the shared cache, else trained (and cached).

    A lock per source makes parallel jobs that need the same source wait for one training.
    `cache_dir` overrides the shared, content-addressed folder (a private, uncached source).
    """
    stage_cfg = source_stage_config(cfg)
    rid = run_id(stage_cfg)
    cache_dir = cache_dir or store.source_cache_dir(rid)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with process_lock(cache_dir / ".lock"):
        cached = _cached_source(rid, cache_dir)
        if cached is not None:
            if not store.is_completed(rid):
                store.write({**cached, "study": store.study})
            return cached
        record = run_stage(stage_cfg, store, checkpoint_dir=cache_dir)
        if record["status"] != "failed" and process_rank() == 0:
            atomic_write_json(cache_dir / "record.json", record)
    return record


def _source_failed(stage_cfg: DictConfig, store: ResultsStore, source: dict) -> dict[str, Any]:
    """Record a target run that cannot start because its source stage did not complete."""
    rid = run_id(stage_cfg)
    stage_cfg = _with_run_info(stage_cfg, rid, store.run_dir(rid))
    now = _now()
    error = f"source stage {source['run_id']} {source['status']}: {source.get('error')}"
    record = {
        **_base_record(stage_cfg, rid),
        "status": "failed",
        "error": error,
        "started_at": now,
        "finished_at": now,
        "wall_time_s": 0.0,
    }
    if process_rank() == 0:
        store.write(record)
    return record


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one transfer run: check it, train (or reuse) its source, train the target stage.

    Returns the target stage's record (metrics under `metrics`), so tests and sweepers can
    call it directly. A completed run already in the store is returned at once, without
    training, unless `force=true`; a lock keeps two processes from training the same run.
    """
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    store = ResultsStore(cfg.paths.results, cfg.study)
    uses_source = cfg.init == "source"
    source_rid = run_id(source_stage_config(cfg)) if uses_source else None
    stage_cfg = target_stage_config(cfg, source_rid)
    rid = run_id(stage_cfg)
    if store.is_final(rid) and not cfg.force:
        log.info("run %s is already done; skipped", rid)
        return {**store.load(rid), "skipped": True}
    preflight(cfg)
    store.records_dir.mkdir(parents=True, exist_ok=True)
    with process_lock(store.records_dir / f".{rid}.lock"):
        if store.is_final(rid) and not cfg.force:  # finished by another process meanwhile
            return {**store.load(rid), "skipped": True}
        if not cfg.cache:
            clear_cache()
        if not uses_source:
            return run_stage(stage_cfg, store)
        private = None if cfg.cache else store.run_dir(rid) / "source"
        source = ensure_source(cfg, store, cache_dir=private)
        if source["status"] != "completed":
            return _source_failed(stage_cfg, store, source)
        checkpoint = source["checkpoint"]
        return run_stage(
            stage_cfg,
            store,
            init_path=str(store.root / checkpoint),
            extra={"source_checkpoint": checkpoint},
        )
