"""Coordination between processes that share a results store: ranks, file locks, barriers.

Jobs of a sweep may run in parallel processes (joblib, submitit, SLURM): a file lock per run and
per source keeps two of them from training the same thing. A multi-process run (DDP) has one
store writer, rank 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

#: Environment variables that carry a process's rank, in the order Lightning reads them.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def process_rank() -> int:
    """Rank of this process in a multi-process run (0 when alone), as Lightning reads it.

    Read from the environment, so that checks and skips need not import Lightning.
    """
    for name in RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return 0


def is_writer() -> bool:
    """Whether this process writes records and checkpoints (rank 0)."""
    return process_rank() == 0


@contextmanager
def process_lock(path: Path) -> Iterator[None]:
    """A file lock between jobs, taken by the first process of a job only.

    Lightning's `ddp` strategy re-executes the command in child processes that must join the
    parent's training rather than wait for the parent's lock (a deadlock). A lock file left by a
    killed job is harmless: the lock is the kernel's, released when its holder dies.
    """
    if not is_writer():
        yield
        return
    with FileLock(str(path)):
        yield


def barrier() -> None:
    """Wait for every process of a multi-process (DDP) run, so files written by rank 0 exist."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
