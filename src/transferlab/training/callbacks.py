"""Lightning callbacks of our own, built from the `callbacks` config group like Lightning's."""

from __future__ import annotations

import os
import signal
import time
from types import FrameType
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from transferlab.training.interrupt import SUBMITIT_VARIABLE


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
        if pl_module.device.type == "cuda":  # kernels run asynchronously: wait for the step
            torch.cuda.synchronize(pl_module.device)
        self.seconds += time.perf_counter() - self._start
        self.samples += batch_examples(batch)

    @property
    def samples_per_s(self) -> float | None:
        """Training samples per second of this attempt (None before any batch)."""
        return self.samples / self.seconds if self.seconds > 0 else None


def batch_examples(batch: Any) -> int:
    """Examples in a training batch: (inputs, labels), or a dict of such parts (an
    adaptation stage's source and target batches)."""
    if isinstance(batch, dict):
        return sum(batch_examples(part) for part in batch.values())
    return len(batch[-1])


def submitit_trainer_options() -> dict[str, Any]:
    """Trainer arguments for a submitit job on Slurm: Lightning's own Slurm requeue is off
    (it would save `hpc_ckpt_*.ckpt` and `scontrol requeue` on SIGUSR1), so that submitit alone
    requeues the job and the run resumes from its own epoch checkpoint. Empty elsewhere."""
    if not (os.environ.get(SUBMITIT_VARIABLE) and os.environ.get("SLURM_JOB_ID")):
        return {}
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return {"plugins": [SLURMEnvironment(auto_requeue=False)]}


class LeaveSigtermToSubmitit(Callback):
    """In a submitit job, SIGTERM belongs to submitit: it lets the job go on and requeues it on
    its pre-emption signal (USR2), and the requeued job resumes from its epoch checkpoint.
    Lightning would instead end the fit at the next batch (a `SystemExit(0)` before the
    requeue). This callback keeps Lightning's notice of the signal and drops its stop
    (Lightning's handler still calls the one set before the fit: `note_sigterm_in_job`'s).

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


class BestWeights(Callback):
    """Keeps, in memory, the weights of the epoch with the best `monitor` on validation (the
    earliest wins a tie), for the test to run on: no checkpoint file round trip per run. The
    weights travel in resume checkpoints (`state_dict`), so a resumed run still tests the best
    epoch of the whole run."""

    def __init__(self, monitor: str = "val/acc", mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode={mode!r}: choose max or min")
        self.monitor, self.mode = monitor, mode
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.weights: dict[str, Any] | None = None

    def _better(self, score: float) -> bool:
        if self.best_score is None:
            return True
        return score > self.best_score if self.mode == "max" else score < self.best_score

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor])
        if score == score and self._better(score):  # NaN never improves
            self.best_score, self.best_epoch = score, trainer.current_epoch
            self.weights = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "weights": self.weights,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict.get("best_score")
        self.best_epoch = state_dict.get("best_epoch")
        self.weights = state_dict.get("weights")


class ResumeCheckpoint(Callback):
    """Writes `<dirpath>/<filename>.ckpt` after validation, at most every `min_interval_s`
    seconds of this attempt, for a killed or requeued run to resume from: a run loses at
    most that much work, and a run of seconds writes nothing. 0 writes every epoch."""

    FILE_EXTENSION = ".ckpt"

    def __init__(self, dirpath: str, filename: str = "last", min_interval_s: float = 30.0) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s={min_interval_s}: must be >= 0")
        self.dirpath, self.filename, self.min_interval_s = dirpath, filename, min_interval_s
        self._last = 0.0

    @property
    def path(self) -> str:
        return f"{self.dirpath}/{self.filename}{self.FILE_EXTENSION}"

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._last = time.monotonic()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        due = time.monotonic() - self._last >= self.min_interval_s
        # Every process decides alike (saving is collective under DDP): rank 0's clock rules.
        if trainer.strategy.broadcast(due):
            # The whole training state, optimiser included (said, so Lightning need not log it).
            trainer.save_checkpoint(self.path, weights_only=False)
            self._last = time.monotonic()
