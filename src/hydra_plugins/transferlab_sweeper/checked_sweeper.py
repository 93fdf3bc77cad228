"""Hydra's basic sweeper, with the grid planned before the first job starts.

Every job is composed as its launcher will compose it and given the same checks as a single run
(`transferlab.training.checks`): a bad value anywhere in a grid (`-m target_size=20,-5`) ends the
sweep with one line naming the job, before anything trains. The plan (`transferlab.sweep.plan`)
also leaves out the grid points whose run is already done and those that repeat an earlier
grid point's run (a scratch run does not depend on the source grid), so a re-launched study
starts only what is missing, and a finished one ends in seconds. Under Hydra's joblib launcher
the jobs are composed and checked in its worker processes, which start for the jobs anyway;
under other launchers, in this process. Hydra loads plugins from the `hydra_plugins` package
only, hence this module's place.

With `checks: false` it is Hydra's basic sweeper (no plan, no checks, no cohorts): for apps that
are not transferlab, such as Hydra's own plugin test suites run against it. Importing this
module (Hydra does, when it scans for plugins) registers it as `hydra/sweeper=transferlab`.
"""

import logging
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

log = logging.getLogger("transferlab.sweep")

#: How often Slurm looks at time limits (s): a job's time-limit signal (`signal_delay_s` before
#: the limit) may come this much earlier than asked (docs/clusters.md).
SLURM_CHECK_PERIOD_S = 30


@dataclass
class CheckedSweeperConf:
    """The sweeper's settings (`conf/hydra/sweeper/checked.yaml` gives transferlab's)."""

    _target_: str = "hydra_plugins.transferlab_sweeper.checked_sweeper.CheckedSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    checks: bool = True


ConfigStore.instance().store(
    group="hydra/sweeper", name="transferlab", node=CheckedSweeperConf, provider="transferlab"
)


class CheckedSweeper(BasicSweeper):
    """`BasicSweeper` that plans and checks the whole grid first (see the module docstring)."""

    _planned: list[list[str]] | None = None
    _composer: Any = None
    _warm_up: Any = None

    def __init__(
        self, max_batch_size: int | None = None, params: dict | None = None, checks: bool = True
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.checks = checks

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        """As `BasicSweeper.setup`, with a launcher whose config loader composes each job with
        the plan's `JobComposer`: a launcher that runs jobs in this process does not compose a
        planned job twice (the joblib launcher's workers compose their jobs again)."""
        from hydra.core.plugins import Plugins
        from hydra.types import HydraContext

        from transferlab.sweep.plan import JobComposer, PlannedLoader

        self.hydra_context, self.config = hydra_context, config
        self._composer = JobComposer(hydra_context.config_loader, config)
        planned = HydraContext(PlannedLoader(self._composer), hydra_context.callbacks)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=planned, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from transferlab.sweep.cohorts import group_jobs, launcher_workers
        from transferlab.sweep.progress import record_plan
        from transferlab.sweep.warmup import WorkerWarmUp
        from transferlab.training.console import quiet_launchers

        quiet_launchers(bool(self.config.get("verbose")))
        self._check_settings()
        if not self.checks:  # Hydra's basic sweeper
            return super().sweep(arguments)
        self._check_signal_time()
        self._warm_up = WorkerWarmUp(self.launcher)  # started when a job is to be checked
        try:
            plan = self.plan_grid(arguments)
        except BaseException:
            self._warm_up.cancel()
            raise
        if plan.launch:
            self._warm_up.finish()
        else:
            self._warm_up.cancel()
        record_plan(Path(self.config.hydra.sweep.dir), plan)  # one progress line per run
        self._planned, cohorts = group_jobs(
            plan.launch, plan.entries, launcher_workers(self.config)
        )
        if cohorts is not None:
            log.info("cohorts: %s", cohorts)
        return super().sweep(arguments)

    def _check_settings(self) -> None:
        """`max_batch_size` is a positive number of jobs or null (the whole grid in one batch),
        as Hydra's basic sweeper requires, and `checks` is true or false; anything else is one
        line, before any planning."""
        from transferlab.errors import GridError

        size = self.max_batch_size
        if not (
            size is None or (isinstance(size, int) and not isinstance(size, bool) and size > 0)
        ):
            raise GridError(
                f"hydra.sweeper.max_batch_size={size!r}: must be a positive number of jobs per "
                "batch, or null (the whole grid in one batch)"
            )
        if not isinstance(self.checks, bool):
            raise GridError(
                f"hydra.sweeper.checks={self.checks!r}: must be true (plan and check the grid "
                "first) or false (Hydra's basic sweeper, for apps that are not transferlab)"
            )

    def _check_signal_time(self) -> None:
        """A Slurm job's time-limit signal must reach it after it started: Slurm may send it up
        to `SLURM_CHECK_PERIOD_S` early, and a signal before submitit's handler ends the job
        (exit 140) with no requeue. One line before anything is submitted."""
        from transferlab.errors import GridError

        launcher = self.config.hydra.launcher
        delay, limit = launcher.get("signal_delay_s"), launcher.get("timeout_min")
        if delay is None or limit is None or delay + SLURM_CHECK_PERIOD_S < limit * 60:
            return
        raise GridError(
            f"hydra.launcher.signal_delay_s={delay} with timeout_min={limit}: Slurm sends the "
            f"time-limit signal up to {SLURM_CHECK_PERIOD_S} s earlier than asked, so it would "
            "end the job as it starts, without a requeue; use a signal_delay_s below "
            f"{limit * 60 - SLURM_CHECK_PERIOD_S} or a longer timeout_min"
        )

    def split_arguments(self, overrides: Any, max_batch_size: int | None) -> list[list[list[str]]]:
        """The planned jobs (all of the grid before planning), in batches."""
        jobs = self._planned
        if jobs is None:
            jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        size = max_batch_size or max(len(jobs), 1)
        return [jobs[i : i + size] for i in range(0, len(jobs), size)]

    def plan_grid(self, arguments: list[str]) -> Any:
        """Compose (or find in the plan cache) and check every job; raise the first problem, in
        grid order, as a GridError. Returns the plan: the jobs to launch and counts of those
        left out."""
        from transferlab.sweep.plan import PlanCache, SweepPlan, fingerprint, is_done, job_key

        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        overrides = OverridesParser.create(config_loader=loader).parse_overrides(
            [*self._parse_config(), *arguments]
        )
        swept = {o.get_key_element() for o in overrides if o.is_sweep_override()}
        root = self._results_root()
        cache = PlanCache(root, fingerprint(loader, self.config) if root else None)
        started, plan, seen = time.perf_counter(), SweepPlan(), set()
        jobs = BasicSweeper.split_arguments(overrides, None)[0]
        entries = {number: cache.get(job_key(job)) for number, job in enumerate(jobs, 1)}
        done = {n: entry is not None and is_done(entry) for n, entry in entries.items()}
        unknown = [(n, job) for n, job in enumerate(jobs, 1) if not done[n]]  # its id may be new
        for number, entry in self._checked_entries(unknown, swept).items():
            cache.put(job_key(jobs[number - 1]), entry)
            entries[number], done[number] = entry, is_done(entry)
        for number, job in enumerate(jobs, 1):
            entry = entries[number]
            run = (entry["records"], entry["run_id"])
            if done[number]:
                plan.done += 1
            elif run in seen:
                plan.duplicates += 1
            else:
                seen.add(run)
                plan.launch.append(job)
                plan.entries.append(entry)
        cache.save()
        plan.jobs, plan.composed = len(jobs), len(unknown)
        log.info(
            "planned %d jobs in %.1fs: %d to run, %d done before, %d repeat another job's run "
            "(%d composed and checked)",
            plan.jobs,
            time.perf_counter() - started,
            len(plan.launch),
            plan.done,
            plan.duplicates,
            plan.composed,
        )
        return plan

    def _checked_entries(
        self, jobs: list[tuple[int, list[str]]], swept: set[str]
    ) -> dict[int, dict[str, Any]]:
        """The plan entries of (number, job) pairs, composed and checked: in the joblib
        launcher's workers when it has two or more, which start to import for the jobs anyway
        (`WorkerWarmUp.run`, `check_chunk`), or in this process. Raises the GridError of the
        first bad job in grid order, having stopped the workers' other checks."""
        from transferlab.sweep.plan import CHUNKS_PER_WORKER, check_chunk, checked_entry, chunks

        warm = self._warm_up
        if not jobs:
            return {}
        if warm is None or warm.workers < 2:  # another launcher, or joblib runs tasks here
            return {n: checked_entry(self._composer, job, n, swept) for n, job in jobs}
        from uuid import uuid4

        from hydra.core.singleton import Singleton

        assert self.hydra_context is not None
        loader, state = self.hydra_context.config_loader, Singleton.get_state()
        context = (uuid4().hex, loader, self.config, state)
        parts = chunks(jobs, CHUNKS_PER_WORKER * warm.workers)
        entries = {}
        results = warm.run(check_chunk, [(*context, part, swept) for part in parts])
        with closing(results):  # a bad job stops the later chunks' checks
            for outcomes in results:
                for number, outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise outcome
                    entries[number] = outcome
        return entries

    def _results_root(self) -> str:
        assert self.config is not None
        try:
            root = OmegaConf.select(self.config, "paths.results", throw_on_resolution_failure=True)
        except Exception:  # noqa: BLE001 - an interpolation only a job resolves: no cache
            return ""
        return "" if root is None else str(root)  # no results folder: no plan cache

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Every job was composed and checked by `plan_grid` before the first batch (without
        checks, Hydra's own validation)."""
        if not self.checks:
            super().validate_batch_is_legal(batch)
