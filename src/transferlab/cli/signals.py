"""SIGTERM (what SLURM sends on pre-emption) and SIGINT (Ctrl-C) stop a run where it is and end
the process with status 128 + the signal number, as a shell reports a process killed by it.

The interrupted run writes no record and keeps its last epoch checkpoint, so launching the same
command again resumes it. Without this, Lightning answers SIGTERM by leaving its fit loop with
`SystemExit(0)`: a batch script would go on as if the run had finished.
"""

from __future__ import annotations

import signal
from types import FrameType

from transferlab.training.interrupt import SIGNAL_EXIT_BASE, Interrupted

__all__ = ["SIGNAL_EXIT_BASE", "STOP_SIGNALS", "Interrupted", "stop_on_signals"]

#: The signals that stop a run.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def stop_on_signals() -> None:
    """Raise `Interrupted` in the main thread on SIGTERM and SIGINT (Lightning keeps calling
    its own notifier first: it composes with a handler that is already set)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise)
