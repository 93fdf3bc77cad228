"""A run stopped after some epoch (SIGKILL, SIGTERM or SIGINT) and launched again ends exactly
as the same run uninterrupted: the same selected epoch, validation curve and test metrics, bit
for bit on the CPU, and its logs (the CSV file, W&B's offline run file read back) hold every
epoch once, at the step the uninterrupted run logged it at.

The runs draw random numbers besides their batch order (dropout and a random crop on images;
or drop-path in the trained blocks behind frozen depth groups whose outputs are computed once),
so a resumed run that replayed the first epoch's batch order or random draws would end
elsewhere. Those runs are real processes (SIGKILL's stopped run as a user types it, the others
forked from a process that imported the package: `helpers.entry`); each setup trains its
uninterrupted reference once, for every signal. The batch order's own rule is checked
in-process, fast.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FAST
from helpers import entry
from helpers.wandb_files import summarize

from transferlab.store import read_record
from transferlab.training.loaders import EpochSampler

#: One worker runs this file: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("test_resume")

TIMEOUT = 300
EPOCHS = 12
# The signal goes once this epoch's checkpoint is written: a history to restore, epochs to go.
STOP_AFTER = 2
SETUPS = {
    "augment": [
        "init=scratch",
        "+model.kwargs.drop_rate=0.3",
        "augment=flip_crop",
        "logger=[wandb,csv]",
    ],
    "feature_cache": [  # drop-path in the trained blocks; the frozen stem and layer1 draw none
        "init=source",
        "+model.kwargs.drop_path_rate=0.3",
        "freeze_depth=2",
        "feature_cache=true",
        "logger=[csv]",
    ],
}
CACHE_USED = "frozen prefix computed once"


def _command(results: Path, study: str, setup: str) -> list[str]:
    fast = [a for a in FAST if not a.startswith("train.epochs")]
    return [
        sys.executable,
        "-m",
        "transferlab.cli.run",
        *fast,
        f"train.epochs={EPOCHS}",
        "callbacks.resume_checkpoint.min_interval_s=0",  # a checkpoint every epoch
        "threads=1",
        f"paths.results={results}",
        f"study={study}",
        *SETUPS[setup],
    ]


def _finish(cmd: list[str]) -> str:
    proc = entry.run(cmd, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _checkpoint_epoch(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - absent or being written: look again
        return None


def _stop(cmd: list[str], runs: Path, signum: int, log: Path) -> Path:
    """Start the run, send `signum` once an epoch >= STOP_AFTER has its checkpoint (sources
    train fewer epochs), and return the checkpoint the stopped run left."""
    # its own session: SIGKILL takes W&B's helper too; SIGKILL's run as a user types it
    proc = entry.start(cmd, log, new_session=True, typed=signum == signal.SIGKILL)
    deadline = time.monotonic() + TIMEOUT
    try:
        while not any(
            (_checkpoint_epoch(p) or 0) >= STOP_AFTER for p in runs.glob("*/checkpoints/last.ckpt")
        ):
            assert proc.poll() is None, "the run ended before it could be stopped"
            assert time.monotonic() < deadline, "no checkpoint to stop after"
            time.sleep(0.05)
        if signum == signal.SIGKILL:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        status = proc.wait(timeout=TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert status == (-signum if signum == signal.SIGKILL else 128 + signum), log.read_text()
    (checkpoint,) = [
        p for p in runs.glob("*/checkpoints/last.ckpt") if (_checkpoint_epoch(p) or 0) >= STOP_AFTER
    ]
    return checkpoint


def _csv_steps(run_dir: Path) -> dict[str, list[tuple[int, int]]]:
    """(epoch, step) of each CSV row holding a validation accuracy or a training loss."""
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {
        key: sorted((int(float(row["epoch"])), int(row["step"])) for row in rows if row.get(key))
        for key in ("val/acc", "train/loss")
    }


def _wandb_steps(run_dir: Path) -> dict[str, list[tuple[int, int]]]:
    """(epoch, Lightning's step) of each W&B history row holding either, from the one run file."""
    (run_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    history = summarize(run_file)["history"]
    return {
        key: sorted(
            (int(float(row["epoch"])), int(float(row["trainer/global_step"])))
            for row in history
            if key in row
        )
        for key in ("val/acc", "train/loss")
    }


def _outcome(results: Path, study: str, setup: str) -> dict:
    """The target stage's record and where its logs put each epoch."""
    records = [read_record(p) for p in (results / study / "records").glob("*.json")]
    (record,) = [r for r in records if r["stage"] == "target"]
    run_dir = results / study / "runs" / record["run_id"]
    if setup == "feature_cache":
        assert CACHE_USED in (run_dir / "run.log").read_text()
    return {
        "record": record,
        "csv": _csv_steps(run_dir),
        "wandb": _wandb_steps(run_dir) if "wandb" in str(SETUPS[setup]) else None,
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of a setup, trained on first use; each setup has its results
    folder (its source cached there for the stopped runs to reuse), one study per run."""
    root = tmp_path_factory.mktemp("resume")
    done: dict[str, tuple[Path, dict]] = {}

    def _reference(setup: str) -> tuple[Path, dict]:
        if setup not in done:
            results = root / setup
            _finish(_command(results, "reference", setup))
            done[setup] = results, _outcome(results, "reference", setup)
        return done[setup]

    return _reference


def test_an_epochs_batch_order_depends_on_the_seed_and_epoch_only():
    examples, per_epoch = 10, 25  # cycled: two permutations and part of a third
    sampler = EpochSampler(examples, per_epoch, seed=3)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    resumed = EpochSampler(examples, per_epoch, seed=3)  # as a run resumed after epoch 1 makes it
    resumed.set_epoch(2)
    assert list(resumed) == orders[2]
    assert len({tuple(order) for order in orders}) == 3  # each epoch its own order
    assert all(len(order) == len(sampler) == per_epoch for order in orders)
    assert all(sorted(order[:examples]) == list(range(examples)) for order in orders)
    other = EpochSampler(examples, per_epoch, seed=4)
    other.set_epoch(2)
    assert list(other) != orders[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setup", "signum"),
    [
        ("augment", signal.SIGKILL),
        ("augment", signal.SIGTERM),
        ("augment", signal.SIGINT),
        ("feature_cache", signal.SIGTERM),
    ],
    ids=["augment-SIGKILL", "augment-SIGTERM", "augment-SIGINT", "feature_cache-SIGTERM"],
)
def test_resumed_run_equals_the_uninterrupted_one(reference, setup, signum, tmp_path):
    results, expected = reference(setup)
    study = signal.Signals(signum).name.lower()
    cmd = _command(results, study, setup)
    checkpoint = _stop(cmd, results / study / "runs", signum, tmp_path / "stopped.log")
    stopped_at = _checkpoint_epoch(checkpoint)
    assert stopped_at is not None and stopped_at < EPOCHS - 1  # epochs left to train
    assert not (results / study / "records" / f"{checkpoint.parent.parent.name}.json").exists()
    assert f"resuming from {checkpoint}" in _finish(cmd)
    got = _outcome(results, study, setup)
    record, want = got["record"], expected["record"]
    assert record["status"] == want["status"] == "completed"
    assert [row["epoch"] for row in record["val_curve"]] == list(range(EPOCHS))
    assert record["best_epoch"] == want["best_epoch"]
    assert record["val_curve"] == want["val_curve"]  # bit for bit: floats as JSON wrote them
    assert record["metrics"]["val"] == want["metrics"]["val"]
    assert record["metrics"]["test"] == want["metrics"]["test"]
    # Every epoch logged once, at the uninterrupted run's step (restored epochs included).
    assert [e for e, _ in expected["csv"]["val/acc"]] == list(range(EPOCHS))
    assert got["csv"] == expected["csv"]
    assert got["wandb"] == expected["wandb"]
