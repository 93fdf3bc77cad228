"""One transfer run end to end: check it, skip it if done, train (or reuse) its source stage,
train its target stage, write each stage's record.

`train(cfg)` tells the whole story; each step below is one function.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from transferlab._helpers import atomic_write_json
from transferlab.adaptation import is_adaptation
from transferlab.adaptation.data import (
    AdaptationData,
    check_label_spaces,
    selection_splits,
    target_parts,
)
from transferlab.data import (
    budget_split,
    build_splits,
    clear_cache,
    describe,
    source_pool,
    stratified_subset,
    unlabelled_subset,
)
from transferlab.errors import ConfigError
from transferlab.models import load_checkpoint
from transferlab.store import (
    RecordError,
    ResultsStore,
    check_writable,
    is_current,
    read_record,
    run_id,
    stage_configs,
)
from transferlab.store.identity import with_effective_init
from transferlab.store.locks import barrier, is_writer, process_lock
from transferlab.training.checks import (
    check_structure,
    data_options,
    preflight,
    uses_budget_validation,
)
from transferlab.training.config_schema import check_run_config
from transferlab.training.console import stage_output
from transferlab.training.drift import PREVIOUS, after_previous
from transferlab.training.interrupt import job_ending, raise_if_job_ending
from transferlab.training.keep import SOURCE_CHECKPOINT, keep_weights, weights_path
from transferlab.training.record import base_fields, finish, outcome_fields

log = logging.getLogger(__name__)

SOURCE_RECORD = "record.json"


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one transfer run: check it, train (or reuse) its source, train the target stage.

    Returns the target stage's record (metrics under `metrics`), so tests and sweepers can call
    it directly. A finished run already in the store is returned at once, without training,
    unless `force=true`; a lock keeps two processes from training the same run.
    """
    check_run_config(cfg)
    cfg = with_effective_init(cfg)
    check_structure(cfg)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    store = ResultsStore(cfg.paths.results, cfg.study)
    source_cfg, target_cfg = stage_configs(cfg)
    rid = run_id(target_cfg)
    if (done := _finished(store, rid, cfg.force, bool(cfg.save_weights))) is not None:
        return done
    preflight(cfg)
    check_writable(store.records_dir, "paths.results")
    with process_lock(store.records_dir / f".{rid}.lock"):
        if (done := _finished(store, rid, cfg.force, bool(cfg.save_weights))) is not None:
            return done
        if not cfg.cache:
            clear_cache()
        if cfg.init == PREVIOUS:  # a drift chain's sequential step
            return after_previous(
                cfg,
                train,
                lambda prev: run_stage(target_cfg, store, source_checkpoint=prev["checkpoint"]),
                lambda prev: _without_source(target_cfg, store, prev, "previous step"),
            )
        if source_cfg is None:
            return run_stage(target_cfg, store)
        private = None if cfg.cache else store.run_dir(rid) / "source"
        source = ensure_source(source_cfg, store, cache_dir=private)
        if source["status"] != "completed":
            return _without_source(target_cfg, store, source)
        return run_stage(target_cfg, store, source_checkpoint=source["checkpoint"])


def _finished(
    store: ResultsStore, rid: str, force: bool, needs_weights: bool
) -> dict[str, Any] | None:
    """The stored record of a finished run (marked skipped), unless forced to run again or
    asked to keep weights it did not keep (then it trains again, to the same numbers)."""
    if force or not store.is_final(rid, needs_weights=needs_weights):
        return None
    log.info("run %s is already done; skipped", rid)
    return {**store.load(rid), "skipped": True}


def _with_run_info(stage_cfg: DictConfig, rid: str, run_dir: Path) -> DictConfig:
    """Fill the `run` node that logger and callback configs interpolate."""
    tags = [
        f"stage:{stage_cfg.stage}",
        f"init:{stage_cfg.init}",
        f"freeze_depth:{stage_cfg.freeze_depth}",
        f"dataset:{describe(stage_cfg.dataset)}",
    ]
    if stage_cfg.get("source") is not None:
        tags.append(f"source:{describe(stage_cfg.source)}")
    if stage_cfg.stage == "target":
        tags.append(f"target:{describe(stage_cfg.target)}")
    stage_cfg.run = {
        "id": rid,
        "name": f"{stage_cfg.stage}-{rid}",
        "dir": str(run_dir),
        "tags": tags,
    }
    return stage_cfg


def _training_data(stage_cfg: DictConfig) -> tuple[Any, Any]:
    """The stage's splits and its class-stratified training subset (seeded by the run seed),
    drawn from the stage's part of the training pool (`stage_config`'s `pool`).

    A target stage under `val_protocol=budget` validates on examples held out of its own
    labelled budget (`budget_split`) instead of the dataset's fixed validation set; an
    adaptation stage reads the source's examples too (`adaptation_data`)."""
    splits = build_splits(stage_cfg.dataset, pool=stage_cfg.pool, **data_options(stage_cfg))
    if stage_cfg.stage == "target" and is_adaptation(stage_cfg.get("method")):
        return adaptation_data(stage_cfg)
    labelled = {"classes": splits.classes, "dataset": splits.description}
    if uses_budget_validation(stage_cfg):
        train, val = budget_split(
            splits.train.labels,
            stage_cfg.train_size,
            stage_cfg.seed,
            float(stage_cfg.val_share),
            **labelled,
        )
        return replace(splits, val=splits.train.subset(val)), splits.train.subset(train)
    if not labels_read(stage_cfg):  # drawn without a label: labels cannot change the examples
        subset = unlabelled_subset(
            len(splits.train), stage_cfg.train_size, stage_cfg.seed, dataset=splits.description
        )
    else:
        subset = stratified_subset(
            splits.train.labels, stage_cfg.train_size, stage_cfg.seed, **labelled
        )
    return splits, splits.train.subset(subset)


def adaptation_data(stage_cfg: DictConfig) -> tuple[Any, AdaptationData]:
    """An adaptation stage's splits (validation: the set its `selection` names; test: the
    target's) and its training parts: the labelled source examples its source stage drew (by
    the same rule and seed), the target's `target_size` labelled examples and, for a method
    that reads it, the rest of the target's pool without labels."""
    method = instantiate(stage_cfg.method)
    options = data_options(stage_cfg)
    target = build_splits(stage_cfg.dataset, pool="target", **options)
    source = build_splits(
        stage_cfg.source, pool=source_pool(stage_cfg.source, stage_cfg.target), **options
    )
    check_label_spaces(method.name, source, target)
    seed = stage_cfg.pretrain.seed if stage_cfg.pretrain.get("seed") is not None else stage_cfg.seed
    source_view = OmegaConf.create({"stage": "source", "pretrain": stage_cfg.pretrain})
    if labels_read(source_view):
        drawn = stratified_subset(
            source.train.labels,
            stage_cfg.source_size,
            int(seed),
            classes=source.classes,
            dataset=source.description,
        )
    else:
        drawn = unlabelled_subset(
            len(source.train), stage_cfg.source_size, int(seed), dataset=source.description
        )
    labelled, unlabelled = target_parts(
        target,
        stage_cfg.target_size,
        method.unlabelled_size,
        int(stage_cfg.seed),
        method.reads_target_pool,
    )
    data = AdaptationData(source.train.subset(drawn), labelled, unlabelled, source.test)
    return selection_splits(target, source, method.selection), data


def labels_read(stage_cfg: DictConfig) -> bool:
    """Whether the stage reads its labels: all but a source stage whose objective does not."""
    from transferlab.objectives import is_supervised

    if stage_cfg.stage != "source":
        return True
    return is_supervised(OmegaConf.select(stage_cfg, "pretrain.objective"))


def run_stage(
    stage_cfg: DictConfig,
    store: ResultsStore,
    *,
    source_checkpoint: str | None = None,
    checkpoint_dir: Path | None = None,
) -> dict[str, Any]:
    """Train one stage and write its record; a crash is recorded as `failed`, not raised.

    `source_checkpoint` (relative to the results root) initialises a target stage;
    `checkpoint_dir` receives a source stage's selected weights. Lightning's and W&B's output
    goes to the run's log file (and to the console only with `verbose=true`).
    """
    rid = run_id(stage_cfg)
    run_dir = store.run_dir(rid)
    run_dir.mkdir(parents=True, exist_ok=True)
    stage_cfg = _with_run_info(stage_cfg, rid, run_dir)
    base = {**base_fields(stage_cfg, rid), "source_checkpoint": source_checkpoint}
    init_path = str(store.root / source_checkpoint) if source_checkpoint else None
    started = time.perf_counter()
    with stage_output(run_dir, bool(stage_cfg.get("verbose"))):
        result, outcome = _train_stage(stage_cfg, store, init_path, checkpoint_dir)
    record = finish(base, outcome, time.perf_counter() - started)
    if result is None or result.is_global_zero:
        store.write(record)
    barrier()
    return record.to_dict()


def _train_stage(
    stage_cfg: DictConfig, store: ResultsStore, init_path: str | None, checkpoint_dir: Path | None
) -> tuple[Any, dict[str, Any]]:
    """(fit result or None, outcome fields) of one stage; a crash becomes a `failed` outcome."""
    from transferlab.training.fit import fit_stage  # imports Lightning: not needed to skip

    result, outcome = None, {}
    try:
        splits, train_split = _training_data(stage_cfg)
        run_dir = Path(stage_cfg.run.dir)
        result = fit_stage(stage_cfg, splits, train_split, run_dir, init_path=init_path)
        outcome = outcome_fields(result)
        kept = weights_path(stage_cfg, run_dir, checkpoint_dir)
        if result.status == "completed" and kept is not None:
            outcome["checkpoint"] = store.relative(kept)
            if result.is_global_zero:
                keep_weights(stage_cfg, result, splits, kept)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a crashed run is recorded, and the sweep goes on
        raise_if_job_ending(exc)
        log.exception("run %s failed", stage_cfg.run.id)
        outcome = {**outcome, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        _finish_loggers()
    return result, outcome


def _finish_loggers() -> None:
    """Close the W&B run so the next job in this process starts its own (none when W&B was
    never imported: a run without the wandb logger needs no wandb installed).

    While the process is being stopped (a signal, submitit's requeue: a `BaseException` in
    flight), W&B's own error does not replace the stop, and once Slurm ended the job (and W&B's
    service with it) W&B is left alone: its offline files stay for the resumed attempt."""
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None or job_ending():
        return
    in_flight = sys.exc_info()[1]
    try:
        wandb.finish()
    except Exception as exc:
        if in_flight is None or isinstance(in_flight, Exception):
            raise
        log.warning("W&B run not closed while the run stops (%s: %s)", type(exc).__name__, exc)


def _cached_source(rid: str, cache_dir: Path) -> dict[str, Any] | None:
    """A cached source outcome whose record (and checkpoint) are whole and made under the
    current identity rule; else None (train again). A diverged source is cached too, so its
    target runs do not each train it again."""
    record_path, checkpoint = cache_dir / SOURCE_RECORD, cache_dir / SOURCE_CHECKPOINT
    try:
        record = read_record(record_path, run_id=rid) if record_path.exists() else None
        if is_current(record) and record["status"] == "completed":
            load_checkpoint(checkpoint)
    except (RecordError, ConfigError) as exc:
        log.warning("cached source %s is damaged (%s); training it again", rid, exc)
        return None
    return record if is_current(record) and record["status"] != "failed" else None


def ensure_source(
    source_cfg: DictConfig, store: ResultsStore, cache_dir: Path | None = None
) -> dict[str, Any]:
    """The source stage's record: reused from the shared cache, else trained (and cached).

    A lock per source makes parallel jobs that need the same source wait for one training.
    `cache_dir` overrides the shared, content-addressed folder (a private, uncached source).
    """
    rid = run_id(source_cfg)
    cache_dir = cache_dir or store.source_cache_dir(rid)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with process_lock(cache_dir / ".lock"):
        cached = _cached_source(rid, cache_dir)
        if cached is not None:
            if not store.is_completed(rid):
                store.write({**cached, "study": store.study})
            return cached
        record = run_stage(source_cfg, store, checkpoint_dir=cache_dir)
        if record["status"] != "failed" and is_writer():
            atomic_write_json(cache_dir / SOURCE_RECORD, record)
    return record


def _without_source(
    stage_cfg: DictConfig, store: ResultsStore, source: dict, what: str = "source stage"
) -> dict[str, Any]:
    """Record a target run that cannot start because its source stage (or, for a drift step,
    the previous step: `what`) did not complete.

    A diverged source is a result (it diverges again): its target runs are recorded as
    `diverged`, naming it, and a re-launch keeps them. A failed source fails them (tried again).
    """
    rid = run_id(stage_cfg)
    stage_cfg = _with_run_info(stage_cfg, rid, store.run_dir(rid))
    status = "diverged" if source["status"] == "diverged" else "failed"
    error = f"{what} {source['run_id']} {source['status']}: {source.get('error')}"
    record = finish(base_fields(stage_cfg, rid), {"status": status, "error": error}, 0.0)
    if is_writer():
        store.write(record)
    return record.to_dict()
