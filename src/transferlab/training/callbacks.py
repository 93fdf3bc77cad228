"""Lightning callbacks of our own, built from the `callbacks` config group like Lightning's."""

from __future__ import annotations

import time
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
