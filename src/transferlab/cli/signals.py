"""SIGTERM (what SLURM sends on pre-emption) and SIGINT (Ctrl-C) stop a run where it is and end
the process with status 128 + the signal number, as a shell reports a process killed by it.

The interrupted run writes no record and keeps its last epoch checkpoint, so launching the same
command again resumes it. Without this, Lightning answers SIGTERM by leaving its fit loop with
`SystemExit(0)`: a batch script would go on as if the run had finished.
"""

from __future__ import annotations

import signal
from types import FrameType

#: The signals that stop a run.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: A shell reports a process killed by signal n with this status plus n.
SIGNAL_EXIT_BASE = 128


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


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def stop_on_signals() -> None:
    """Raise `Interrupted` in the main thread on SIGTERM and SIGINT (Lightning keeps calling
    its own notifier first: it composes with a handler that is already set)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise)
