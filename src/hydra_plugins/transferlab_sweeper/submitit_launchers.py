"""submitit's Hydra launchers (Slurm, and local processes for trying that path), waiting for
every job of a batch and reporting a job that ended without a result as one failed job.

Hydra's own submitit launcher returns `[job.results()[0] for job in jobs]`: the first job that
Slurm cancelled (`scancel`, a node failure, out of memory) raises submitit's
`UncompletedJobError` with a traceback, stops the wait for the jobs after it and loses the
sweep's summary. Here each job's outcome is awaited in turn; a job without a result is a
`failed` line in the sweep's progress (its runs wrote no record, so a re-launch trains them)
and the sweep goes on to its summary. Submission is as in Hydra's launcher: the same executor
parameters, the same pickled job (`__call__`, `checkpoint` for requeue). Importing this module
(Hydra does, when it scans for plugins) registers them as `hydra/launcher=transferlab_slurm`
and `transferlab_local` with submitit's defaults (`conf/hydra/launcher/` gives transferlab's).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import (
    BaseQueueConf,
    LocalQueueConf,
    SlurmQueueConf,
)
from omegaconf import OmegaConf

log = logging.getLogger("transferlab.sweep")

#: Launcher settings that configure the executor itself rather than each job's resources.
_EXECUTOR_KEYS = ("submitit_folder", "max_num_timeout")
#: Seconds between two looks at the jobs still running (submitit asks Slurm at most every few).
POLL_S = 1.0


class _WaitsForEveryJob(submitit_launcher.BaseSubmititLauncher):
    """Submit a batch as a job array; await each job; a job without a result is reported."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        import submitit

        assert self.config is not None and job_overrides
        executor = submitit.AutoExecutor(
            folder=self.params["submitit_folder"],
            cluster=self._EXECUTOR,
            **{f"{self._EXECUTOR}_max_num_timeout": self.params.get("max_num_timeout", 0)},
        )
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            key if key in shared else f"{self._EXECUTOR}_{key}": value
            for key, value in self.params.items()
            if key not in _EXECUTOR_KEYS
        })  # fmt: skip
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        numbers = range(initial_job_idx, initial_job_idx + len(job_overrides))
        arguments = [
            (list(overrides), "hydra.sweep.dir", n, f"job_id_for_{n}", Singleton.get_state())
            for n, overrides in zip(numbers, job_overrides, strict=True)
        ]
        jobs = executor.map_array(self, *zip(*arguments, strict=True))
        return self._await(jobs, [list(o) for o in job_overrides], list(numbers), sweep_dir)

    def _await(
        self, jobs: list, overrides: list[list[str]], numbers: list[int], sweep_dir: Path
    ) -> list:
        """Each job's return, in submission order, gathered as the jobs end (in any order);
        the runs' progress lines, written by the jobs in their own processes, are shown here
        as they appear."""
        from transferlab.sweep.progress import echo_progress

        returns: dict[int, JobReturn] = {}
        shown = (0, 0)  # bytes and lines of the progress file shown so far
        while len(returns) < len(jobs):
            for i, job in enumerate(jobs):
                if i not in returns and job.done():
                    returns[i] = self._outcome(job, overrides[i], numbers[i], sweep_dir)
            shown = echo_progress(sweep_dir, shown)
            if len(returns) < len(jobs):
                time.sleep(POLL_S)
        return [returns[i] for i in range(len(jobs))]

    @staticmethod
    def _outcome(job: Any, overrides: list[str], number: int, sweep_dir: Path) -> JobReturn:
        """The job's own return, or, when it ended without one, a failed job's return (and its
        line in the sweep's progress file, which the job could not write)."""
        from submitit.core.utils import UncompletedJobError

        from transferlab.sweep.progress import record_lost_job

        try:
            return job.results()[0]
        except UncompletedJobError:
            state = job.state
        error = (
            f"job {job.job_id} ended without a result ({state}); its runs have no record: "
            "launch the study again to train them"
        )
        record_lost_job(sweep_dir, number, error)
        value = {"status": "failed", "run_id": None, "error": error}
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value)


class SlurmLauncher(_WaitsForEveryJob):
    """Slurm through submitit (`hydra/launcher=slurm`)."""

    _EXECUTOR = "slurm"


class LocalLauncher(_WaitsForEveryJob):
    """submitit's local processes (`hydra/launcher=local`): the Slurm path without a cluster."""

    _EXECUTOR = "local"


for _name, _conf, _launcher in (
    ("slurm", SlurmQueueConf, SlurmLauncher),
    ("local", LocalQueueConf, LocalLauncher),
):
    ConfigStore.instance().store(
        group="hydra/launcher",
        name=f"transferlab_{_name}",
        node=_conf(_target_=f"{__name__}.{_launcher.__name__}"),
        provider="transferlab",
    )
