"""Provenance of a run: the versions of the packages that decide its numbers and the code commit."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "lightning", "timm", "torchmetrics", "hydra-core", "wandb", "transferlab")
GIT_TIMEOUT_S = 5
#: What a record keeps of the Slurm job it ran in (record key: the variable Slurm sets).
SLURM_JOB_FIELDS = {
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "restart_count": "SLURM_RESTART_COUNT",
    "partition": "SLURM_JOB_PARTITION",
    "node": "SLURMD_NODENAME",
}


def now() -> str:
    """The current time, ISO-8601 UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    # Read once per process: the code a process runs is the code it imported.
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


@functools.cache
def git_commit() -> str | None:
    """The commit of the code that ran, when it runs from a git checkout (read once per
    process: the code a process runs is the code it imported)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def cluster_job() -> dict[str, str | int | None] | None:
    """The Slurm job this process runs in (None outside Slurm), to find its logs and
    accounting again: the job id (an array task's own id), the array job and task, the node,
    and how often Slurm requeued it (0 on a first start)."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    job: dict[str, str | int | None] = {
        key: os.environ.get(variable) for key, variable in SLURM_JOB_FIELDS.items()
    }
    job["restart_count"] = int(job["restart_count"] or 0)
    return job
