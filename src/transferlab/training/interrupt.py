"""A stop that the user or the scheduler asked for, as opposed to a crash.

`Interrupted` ends a run without a record (its epoch checkpoint stays, so a re-launch resumes
it). In a submitit job, SIGTERM means Slurm is about to requeue, pre-empt or cancel the job:
the job trains on (submitit's choice), but Slurm signals every process of the job, so helpers
such as W&B's service process end at once and the run may crash a moment later. Such a crash is
the job being torn down, not a failure of the run: `raise_if_job_ending` turns it into an
`Interrupted`, so no `failed` record and no result reach the sweep, and Slurm's requeue (or
cancel) decides what happens next.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

#: Set by submitit in the processes of its jobs (`local` or `slurm`).
SUBMITIT_VARIABLE = "SUBMITIT_EXECUTOR"
#: A shell reports a process killed by signal n with this status plus n.
SIGNAL_EXIT_BASE = 128

_job_ending = False


class Interrupted(BaseException):  # noqa: N818 - not an error: the user or scheduler asked
    """A stop signal arrived. A BaseException, so no `except Exception` records the run as
    failed on its way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    def __reduce__(self) -> tuple:  # rebuilt from the number when sent between processes
        return (Interrupted, (self.signum,))

    @property
    def exit_status(self) -> int:
        return SIGNAL_EXIT_BASE + self.signum


def mark_job_ending() -> None:
    """Note that this job process received SIGTERM from its scheduler."""
    global _job_ending
    _job_ending = True


def note_sigterm_in_job() -> None:
    """In a submitit job, note SIGTERM as the job ending for the whole job (records and logs
    written after a fit included), then let the handler already set (submitit's) decide;
    Lightning composes its own handler with this one during a fit and restores it after."""
    if not os.environ.get(SUBMITIT_VARIABLE):
        return
    previous = signal.getsignal(signal.SIGTERM)

    def note(signum: int, frame: FrameType | None) -> None:
        mark_job_ending()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, note)


def job_ending() -> bool:
    """Whether this process's scheduler has said the job is ending (SIGTERM in a submitit job)."""
    return _job_ending


def raise_if_job_ending(exc: BaseException) -> None:
    """Raise `Interrupted(SIGTERM)` from `exc` when the job is ending: the crash is its teardown."""
    if _job_ending:
        raise Interrupted(signal.SIGTERM) from exc
