"""Lightning callbacks of our own, built from the `callbacks` config group like Lightning's."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

from lightning.pytorch.callbacks import Callback


class TrainTimer(Callback):
    """Time spent in training batches only, for a throughput figure free of validation cost.

    Counts the samples of this attempt itself: a resumed run's module restores the samples of
    the epochs before the restart, which this attempt did not spend time on.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.samples = 0
        self._start = 0.0

    def on_train_batch_start(self, *args: Any) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.seconds += time.perf_counter() - self._start
        self.samples += len(batch[-1])

    @property
    def samples_per_s(self) -> float | None:
        """Training samples per second of this attempt (None before any batch)."""
        return self.samples / self.seconds if self.seconds > 0 else None


#: Set by submitit in the processes of its jobs (`local` or `slurm`).
SUBMITIT_VARIABLE = "SUBMITIT_EXECUTOR"


class LeaveSigtermToSubmitit(Callback):
    """In a submitit job, SIGTERM belongs to submitit: it lets the job go on and requeues it on
    its pre-emption signal (USR2), and the requeued job resumes from its epoch checkpoint.
    Lightning would instead end the fit at the next batch (a `SystemExit(0)` before the
    requeue). This callback keeps Lightning's notice of the signal and drops its stop.

    The code adds it when `SUBMITIT_VARIABLE` is set; it reads Lightning's private signal
    connector (a test pins the behaviour).
    """

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._go_on_after_sigterm(trainer)

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._go_on_after_sigterm(trainer)

    @staticmethod
    def _go_on_after_sigterm(trainer: Any) -> None:
        """Wrap the handler Lightning just installed (each fit and test installs its own)."""
        connector = trainer._signal_connector
        lightning_handler = signal.getsignal(signal.SIGTERM)

        def go_on(signum: int, frame: FrameType | None) -> None:
            if callable(lightning_handler):
                lightning_handler(signum, frame)
            connector.received_sigterm = False

        signal.signal(signal.SIGTERM, go_on)
