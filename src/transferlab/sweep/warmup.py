"""Start a parallel sweep's worker processes as soon as the plan has a job to check.

A joblib worker spends its first seconds importing torch, Lightning, timm and torchmetrics
(about 5 s of a core here) before its first job can train, and checking a job needs the same
modules. So the sweeper starts the workers when the plan cache leaves a job to compose and
check, checks the jobs in them once they have imported (`WorkerWarmUp.run`,
`sweep.plan.check_chunk`: both cores plan, and the launching process never imports torch), and
the launcher then hands its jobs to the same, ready processes (joblib reuses a pool started
with the same settings). A plan that finds every run done in its cache starts no worker, and
a plan that fails (a bad grid point, a signal) stops the workers it started, so bad input
still ends at once. Under the joblib launcher with one worker joblib runs tasks in the
launching process: the plan checks its jobs there, as for other launchers.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger("transferlab.sweep")

#: W&B's launch inputs, which W&B imports when a process starts its first run.
WANDB_LAUNCH_INPUTS = "wandb.sdk.launch.inputs.internal"
#: What a worker imports before its first job: the job function's module and what it imports
#: when a job starts (a lone run, a cohort, the fit). W&B's launch inputs come first: W&B
#: imports them when each process starts its first run, and their pydantic models read their
#: docstrings through `inspect.getmodule`, which walks every loaded module: 0.55 s of a core
#: once torch, timm and Lightning are loaded, 0.14 s before them (measured 2026-12-06).
WARM_MODULES = (
    WANDB_LAUNCH_INPUTS,
    "transferlab.cli.run",
    "transferlab.training.run",
    "transferlab.training.cohort_run",
    "transferlab.training.fit",
)
#: Imported only to save time later: skipped when they fail to import (another version of
#: the package), so that the modules after them are still imported.
OPTIONAL_MODULES = frozenset({WANDB_LAUNCH_INPUTS})
#: Hydra's joblib launcher, the one launcher whose workers are a reusable pool.
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def import_modules(modules: tuple[str, ...]) -> int:
    """Import `modules` in this (worker) process; its pid."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            if name not in OPTIONAL_MODULES:
                raise
            log.debug("skipped %s", name, exc_info=True)
    return os.getpid()


def joblib_settings(launcher: Any) -> dict[str, Any] | None:
    """The `joblib.Parallel` arguments Hydra's joblib launcher will launch with, or None
    when the launcher is another (its jobs do not run in a reusable pool)."""
    kind = type(launcher)
    # By name: Hydra's plugin scan may load the launcher's module again (another class object).
    if f"{kind.__module__}.{kind.__qualname__}" != JOBLIB_LAUNCHER:
        return None
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg

    settings = {**launcher.joblib, "backend": "loky"}  # as the launcher sets it
    process_joblib_cfg(settings)
    return settings


class WorkerWarmUp:
    """The joblib launcher's workers, started early to import (see the module docstring)."""

    def __init__(self, launcher: Any) -> None:
        self.settings = joblib_settings(launcher)
        self.workers = 0  # how many processes (1: joblib runs the tasks in this one)
        if self.settings is not None:
            from joblib import effective_n_jobs

            self.workers = effective_n_jobs(self.settings.get("n_jobs"))
        self._results: Iterator[int] | None = None
        self._tasks: Iterator[Any] | None = None

    def start(self) -> None:
        """Start the workers and their imports, without waiting (once; a no-op for other
        launchers)."""
        if self.settings is None or self._results is not None:
            return
        from joblib import Parallel, delayed

        parallel = Parallel(**self.settings, return_as="generator_unordered")
        self._results = parallel(delayed(import_modules)(WARM_MODULES) for _ in range(self.workers))
        log.debug("started %d workers to import for the plan's checks and the jobs", self.workers)

    def run(self, function: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]:
        """`function(*task)` for each task on the workers, once they have imported: the
        results in task order, as they come (started here if need be; for the joblib launcher
        only). Closing the iterator before its end stops what is left."""
        assert self.settings is not None, "only the joblib launcher's workers run tasks"
        from joblib import Parallel, delayed

        self.start()
        self.finish()
        parallel = Parallel(**self.settings, return_as="generator")
        self._tasks = parallel(delayed(function)(*task) for task in tasks)
        try:
            # not `yield from`: closing it would close joblib's generator outside `cancel`
            for result in self._tasks:  # noqa: UP028
                yield result
            self._tasks = None
        finally:  # closed early (a bad job, a signal): stop the rest, without joblib's warning
            self.cancel()

    def finish(self) -> None:
        """Wait until the workers have imported; a failed import is left to what runs next on
        them (the plan's checks or the jobs), which meets the same error and reports it."""
        if self._results is None:
            return
        try:
            pids = sorted(set(self._results))
            log.debug("workers %s imported %s", pids, ", ".join(WARM_MODULES))
        except Exception:  # noqa: BLE001 - the jobs meet the same error and report it
            log.debug("warming up the workers failed", exc_info=True)
        self._results = None

    def cancel(self) -> None:
        """Stop the workers while they import or run tasks (nothing more will run on them).
        Idle workers are left to end with this process."""
        running = [g for g in (self._results, self._tasks) if g is not None]
        if not running:
            return
        with warnings.catch_warnings():  # joblib warns that the tasks were cancelled
            warnings.simplefilter("ignore")
            for results in running:
                results.close()  # joblib ends the workers of a generator closed early
        self._results = self._tasks = None
        log.debug("stopped the workers: nothing to run on them")
