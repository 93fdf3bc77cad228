"""A cohort's runs end to end, each member as `train` treats it alone: checked, skipped when
finished, its source trained or reused, then the members fitted together (`training/cohort.py`)
and each one's record, CSV/W&B logs and weights written under its own run id.

What the cohort cannot vectorise, or a fit that crashes, falls back to one lone run per
member, so a member's outcome never depends on another's. A member's loggers receive its
whole curve after the fit, each epoch at the step its lone run logs it at (a resumed lone run
logs restored epochs the same way).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from transferlab.data import clear_cache
from transferlab.store import ResultsStore, check_writable, run_id, stage_configs
from transferlab.store.identity import with_effective_init
from transferlab.store.locks import process_lock
from transferlab.training.checks import check_structure, preflight
from transferlab.training.config_schema import check_run_config
from transferlab.training.console import stage_output
from transferlab.training.drift import PREVIOUS
from transferlab.training.interrupt import raise_if_job_ending
from transferlab.training.keep import keep_weights, weights_path
from transferlab.training.record import base_fields, finish, outcome_fields
from transferlab.training.run import (
    _finish_loggers,
    _finished,
    _training_data,
    _with_run_info,
    _without_source,
    ensure_source,
    run_stage,
    train,
)

log = logging.getLogger(__name__)


class Member:
    """One run of a cohort: its config, store, target stage and where it stands."""

    def __init__(self, cfg: DictConfig) -> None:
        check_run_config(cfg)
        self.cfg = with_effective_init(cfg)
        check_structure(self.cfg)
        self.store = ResultsStore(self.cfg.paths.results, self.cfg.study)
        self.source_cfg, target_cfg = stage_configs(self.cfg)
        self.rid = run_id(target_cfg)
        self.stage = _with_run_info(target_cfg, self.rid, self.store.run_dir(self.rid))
        self.checkpoint: str | None = None
        self.record: dict[str, Any] | None = None

    def finished(self) -> bool:
        """Whether a finished record exists (then it is this member's outcome)."""
        self.record = _finished(self.store, self.rid, self.cfg.force, bool(self.cfg.save_weights))
        return self.record is not None


def train_cohort(cfgs: Sequence[DictConfig]) -> list[dict[str, Any]]:
    """Train runs that differ only in seed and `train.lr` together; their records, in order."""
    if any(cfg.get("init") == PREVIOUS for cfg in cfgs):  # a chain's steps run in turn
        return [train(cfg) for cfg in cfgs]
    members = [Member(cfg) for cfg in cfgs]
    todo = list({m.rid: m for m in members if not m.finished()}.values())  # one per run id
    for member in todo:
        preflight(member.cfg)
        check_writable(member.store.records_dir, "paths.results")
    if todo and todo[0].cfg.get("threads"):
        torch.set_num_threads(int(todo[0].cfg.threads))
    if todo and not todo[0].cfg.cache:
        clear_cache()
    with ExitStack() as locks:
        for member in sorted(todo, key=lambda m: m.rid):  # one order: no two jobs deadlock
            locks.enter_context(process_lock(member.store.records_dir / f".{member.rid}.lock"))
        todo = [m for m in todo if not m.finished()]
        ready = [m for m in todo if _with_source(m)]
        if len(ready) > 1:
            _train_together(ready)
        for member in ready:
            if member.record is None:  # alone: a cohort of one, or what it could not train
                member.record = run_stage(
                    member.stage, member.store, source_checkpoint=member.checkpoint
                )
    trained = {m.rid: m.record for m in members if m.record is not None}
    return [trained[m.rid] for m in members]  # a repeated run id: its one record


def _with_source(member: Member) -> bool:
    """Train or reuse the member's source; False (its record written) when there is none."""
    if member.source_cfg is None:
        return True
    private = None if member.cfg.cache else member.store.run_dir(member.rid) / "source"
    source = ensure_source(member.source_cfg, member.store, cache_dir=private)
    if source["status"] != "completed":
        member.record = _without_source(member.stage, member.store, source)
        return False
    member.checkpoint = source["checkpoint"]
    return True


def _train_together(members: list[Member]) -> None:
    """Fit the members as one cohort and write their records; leave them to run alone when
    the cohort cannot vectorise them or its fit crashed."""
    from transferlab.sweep.cohorts import why_alone_config
    from transferlab.training.cohort import NotVectorised, fit_cohort

    first = members[0]
    if (why := why_alone_config(first.cfg)) is not None:  # members given by hand
        log.info("runs %s train alone: %s", ", ".join(m.rid for m in members), why)
        return
    run_dirs = [Path(m.stage.run.dir) for m in members]
    for run_dir in run_dirs:
        run_dir.mkdir(parents=True, exist_ok=True)
    bases = [
        {**base_fields(m.stage, m.rid), "source_checkpoint": m.checkpoint} for m in members
    ]  # started_at: now, before the fit
    started = time.perf_counter()
    try:
        data = [_training_data(m.stage) for m in members]
        inits = [str(m.store.root / m.checkpoint) if m.checkpoint else None for m in members]
        with stage_output(run_dirs, bool(first.stage.get("verbose"))):  # in each run's log
            results = fit_cohort([m.stage for m in members], data, inits)
    except NotVectorised as why:
        log.info("runs %s train alone: %s", ", ".join(m.rid for m in members), why)
        return
    except Exception as exc:  # noqa: BLE001 - each member is tried again alone, isolated
        raise_if_job_ending(exc)
        log.exception("cohort of %s crashed; its runs train alone", first.rid)
        return
    share = (time.perf_counter() - started) / len(members)
    for member, base, result, (splits, _) in zip(members, bases, results, data, strict=True):
        member.record = _write_member(member, base, result, splits, share, len(members))


def _write_member(
    member: Member, base: dict, result: Any, splits: Any, seconds: float, size: int
) -> dict:
    """A member's logs, weights (when kept) and record, as its lone run writes them; what
    fails on the way is the member's own `failed` record, as for a lone run."""
    from transferlab.training.fit import drop_earlier_attempts  # imports Lightning

    stage, store = member.stage, member.store
    run_dir = Path(stage.run.dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    outcome = {**outcome_fields(result), "cohort": size}
    try:
        with stage_output(run_dir, bool(stage.get("verbose"))):
            drop_earlier_attempts(run_dir, member.rid)
            kept = _log_and_keep(stage, result, splits, weights_path(stage, run_dir, None))
        if kept is not None:
            outcome["checkpoint"] = store.relative(kept)
    except Exception as exc:  # noqa: BLE001 - recorded as the member's failure; the others go on
        raise_if_job_ending(exc)
        log.exception("run %s failed", member.rid)
        outcome = {**outcome, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        _finish_loggers()
    record = finish(base, outcome, seconds)
    store.write(record)
    return record.to_dict()


def _log_and_keep(stage: DictConfig, result: Any, splits: Any, kept: Path | None) -> Path | None:
    """The member's hyper-parameters, validation rows with training means, and test metrics,
    to each of its loggers, at the steps its lone run logs them at; its selected weights kept
    (and given to its W&B run, while that is open) when asked for. Where they went, or None."""
    from transferlab.training.fit import build_loggers

    loggers = build_loggers(stage)
    steps = {row["epoch"]: row for row in getattr(result, "train_curve", [])}
    resolved = OmegaConf.to_container(stage, resolve=True)
    last = -1
    for logger in loggers:
        logger.log_hyperparams(resolved)
        for row in result.val_curve:
            epoch, extra = row["epoch"], steps.get(row["epoch"], {})
            metrics = {f"val/{k}": v for k, v in row.items() if k != "epoch"}
            metrics.update({k: v for k, v in extra.items() if k not in ("epoch", "step")})
            metrics.update(epoch_index=float(epoch), epoch=epoch)
            last = int(extra.get("step", last))
            logger.log_metrics(metrics, step=last)
        if result.test:  # after the last epoch, as Lightning logs a test after a fit
            test = {f"test/{k}": v for k, v in result.test.items()}
            logger.log_metrics({**test, "epoch": len(result.val_curve)}, step=last + 1)
    if result.status != "completed" or kept is None:
        kept = None
    else:
        keep_weights(stage, result, splits, kept)  # W&B artifact into the open run
    for logger in loggers:
        logger.finalize("success" if result.status == "completed" else "failed")
    return kept
