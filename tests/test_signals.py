"""SIGTERM (pre-emption) and SIGINT (Ctrl-C) end `transferlab-run` with status 128 + the signal
number, leave the interrupted run resumable (its epoch checkpoint, no record), and a re-launch
resumes it; under submitit a job keeps SIGTERM's meaning of "requeue is coming", and its
pre-emption signal still requeues the job, which resumes. Real processes throughout: one run as
a user types it, the others forked from a process that imported the package (`helpers.entry`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FAST
from helpers import entry

from transferlab.store import read_record

pytestmark = pytest.mark.slow

TIMEOUT = 300
# Long enough that a signal sent after the first epoch checkpoint arrives mid-training.
EPOCHS = 30


def _command(results: Path, study: str, *extra: str, multirun: bool = False) -> list[str]:
    fast = [a for a in FAST if not a.startswith("train.epochs")]
    return [
        sys.executable,
        "-m",
        "transferlab.cli.run",
        *(["-m"] if multirun else []),
        *fast,
        f"train.epochs={EPOCHS}",
        "callbacks.resume_checkpoint.min_interval_s=0",  # every epoch: the test waits for one
        "init=scratch",
        "logger=[csv]",
        "threads=1",
        f"paths.results={results}",
        f"study={study}",
        *extra,
    ]


def _wait_for(pattern: str, folder: Path, proc: subprocess.Popen) -> Path:
    """The first file matching `pattern` under `folder`, once the process has written it."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
        assert proc.poll() is None, "the run ended before it could be signalled"
        time.sleep(0.2)
    raise AssertionError(f"no {pattern} under {folder}")


def _records(results: Path, study: str) -> dict[str, dict]:
    return {p.stem: read_record(p) for p in (results / study / "records").glob("*.json")}


def _finish(cmd: list[str]) -> str:
    proc = entry.run(cmd, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_a_run_with_128_plus_n_and_the_run_resumes(signum, tmp_path):
    results = tmp_path / "results"
    cmd = _command(results, "sig")
    # SIGTERM's run as a user types it; SIGINT's forked
    proc = entry.start(cmd, tmp_path / "run.log", typed=signum == signal.SIGTERM)
    checkpoint = _wait_for("sig/runs/*/checkpoints/last.ckpt", results, proc)
    proc.send_signal(signum)
    assert proc.wait(timeout=TIMEOUT) == 128 + signum
    log = (tmp_path / "run.log").read_text()
    assert f"stopped by {signal.Signals(signum).name}" in log and "Traceback" not in log
    assert checkpoint.exists() and not _records(results, "sig")  # resumable, nothing recorded
    out = _finish(cmd)
    assert "resuming from" in out
    (record,) = _records(results, "sig").values()
    assert record["status"] == "completed" and len(record["val_curve"]) == EPOCHS


@pytest.mark.parametrize("launcher", ["parallel", "local"])
def test_sigterm_ends_a_sweep_with_143_under_joblib_and_submitit(launcher, tmp_path):
    results = tmp_path / "results"
    # One run per job (a cohort writes no epoch checkpoint to wait for).
    cmd = _command(
        results, launcher, f"hydra/launcher={launcher}", "seed=0,1", "cohort=false", multirun=True
    )
    proc = entry.start(cmd, tmp_path / "sweep.log")
    _wait_for(f"{launcher}/runs/*/checkpoints/last.ckpt", results, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=TIMEOUT) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in (tmp_path / "sweep.log").read_text()
    # Launched again, the sweep finishes every run, each once (submitit's jobs, processes of
    # their own as on a cluster, may have finished theirs meanwhile: those are skipped).
    _finish(cmd)
    records = _records(results, launcher)
    assert len(records) == 2 and all(r["status"] == "completed" for r in records.values())
    assert all(len(r["val_curve"]) == EPOCHS for r in records.values())


def test_sigterm_stops_a_cohort_with_143_and_a_relaunch_trains_its_members(tmp_path):
    """A cohort job (the sweep's default) stopped mid-fit writes no member's record; launched
    again, it trains every member, each with its own record."""
    results = tmp_path / "results"
    cmd = _command(
        results, "coh", "hydra/launcher=basic", "seed=0,1,2", "optimizer=sgd", multirun=True
    )
    proc = entry.start(cmd, tmp_path / "sweep.log")
    _wait_for("coh/runs/*/run.log", results, proc)  # the cohort's fit has begun
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=TIMEOUT) == 128 + signal.SIGTERM
    log = (tmp_path / "sweep.log").read_text()
    assert "cohorts: 3 runs in 1 cohorts" in log and "stopped by SIGTERM" in log
    assert not _records(results, "coh")
    _finish(cmd)
    records = _records(results, "coh")
    assert len(records) == 3 and all(r["status"] == "completed" for r in records.values())
    assert all(r["cohort"] == 3 and len(r["val_curve"]) == EPOCHS for r in records.values())


def test_submitit_job_goes_on_after_sigterm_and_requeues_on_preemption(tmp_path):
    results = tmp_path / "results"
    cmd = _command(results, "pre", "hydra/launcher=local", "seed=0", multirun=True)
    proc = entry.start(cmd, tmp_path / "sweep.log")
    _wait_for("pre/runs/*/checkpoints/last.ckpt", results, proc)
    jobs = sorted((results / "pre" / "multirun").glob("*/.submitit/*/*_submitted.pkl"))
    assert jobs, "no submitit job folder"
    job_pid = _job_pid(proc.pid)
    os.kill(job_pid, signal.SIGTERM)  # submitit's: bypassed, the job trains on
    time.sleep(1.0)
    assert _alive(job_pid), "the job ended on SIGTERM, before any requeue"
    os.kill(job_pid, signal.SIGUSR2)  # submitit's pre-emption signal: checkpoint and requeue
    assert proc.wait(timeout=TIMEOUT) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    job_log = "".join(p.read_text() for p in jobs[0].parent.glob("*_log.*"))
    assert "Requeued job" in job_log and "resuming from" in job_log
    (record,) = _records(results, "pre").values()
    assert record["status"] == "completed" and len(record["val_curve"]) == EPOCHS


def test_interrupted_crosses_process_boundaries():
    # A joblib worker stopped by a signal sends its Interrupted back pickled.
    import pickle

    from transferlab.cli.signals import Interrupted

    back = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM)))
    assert isinstance(back, Interrupted) and back.exit_status == 143


def _job_pid(sweep_pid: int) -> int:
    """The process running the submitit job (a descendant of this sweep: other tests running
    beside this one may have submitit jobs of their own)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True
        ).stdout
        rows = [line.split(None, 2) for line in out.splitlines() if line.strip()]
        parent = {int(r[0]): int(r[1]) for r in rows}
        for pid, _, args in (r for r in rows if len(r) == 3):
            ancestor = int(pid)
            while ancestor > 1 and ancestor != sweep_pid:
                ancestor = parent.get(ancestor, 1)
            if "submitit.core._submit" in args and ancestor == sweep_pid:
                return int(pid)
        time.sleep(0.2)
    raise AssertionError(f"no submitit job process under sweep {sweep_pid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_relaunched_run_is_one_wandb_run_with_its_whole_history(tmp_path):
    from helpers.wandb_files import summarize

    results = tmp_path / "results"
    cmd = _command(results, "wb", "logger=[wandb,csv]")
    proc = entry.start(cmd, tmp_path / "run.log")
    checkpoint = _wait_for("wb/runs/*/checkpoints/last.ckpt", results, proc)
    while torch.load(checkpoint, weights_only=True)["epoch"] < 2:  # some history to lose
        assert proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=TIMEOUT) == 128 + signal.SIGTERM
    run_dir = checkpoint.parent.parent
    (stopped,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")  # the stopped attempt
    first = {
        int(float(row["epoch"])): float(row["train/loss"])
        for row in summarize(stopped)["history"]
        if "train/loss" in row
    }
    resumed_at = torch.load(checkpoint, weights_only=True)["epoch"]
    assert "resuming from" in _finish(cmd)
    (folder,) = (run_dir / "wandb").glob("offline-run-*")  # one W&B run per run id
    (log,) = folder.glob("run-*.wandb")
    run = summarize(log)
    assert run["id"] == run_dir.name
    epochs = sorted(int(float(row["epoch_index"])) for row in run["history"] if "val/acc" in row)
    assert epochs == list(range(EPOCHS))  # the restored epochs logged again, then the rest
    trained = {
        int(float(row["epoch"])): float(row["train/loss"])
        for row in run["history"]
        if "train/loss" in row
    }
    assert sorted(trained) == list(range(EPOCHS))  # and the training loss of every epoch,
    # the restored epochs' losses are the ones the stopped attempt logged
    restored = [e for e in first if e < resumed_at]
    assert restored and all(trained[e] == pytest.approx(first[e], rel=1e-6) for e in restored)


def test_a_submitit_jobs_sigterm_marks_the_job_ending_and_still_reaches_submitit(monkeypatch):
    # Slurm's SIGTERM also ends W&B's service process: a crash after it is the job's teardown
    # (no failed record; tests/test_slurm.py shows it under a real Slurm). The note holds for
    # the whole job, and submitit's own handler (here a stand-in) is still called.
    from transferlab.training import interrupt

    seen = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        monkeypatch.setattr(interrupt, "_job_ending", False)
        monkeypatch.delenv(interrupt.SUBMITIT_VARIABLE, raising=False)
        interrupt.note_sigterm_in_job()  # not a submitit job: nothing changes
        interrupt.raise_if_job_ending(ConnectionResetError("not ending"))
        monkeypatch.setenv(interrupt.SUBMITIT_VARIABLE, "slurm")
        interrupt.note_sigterm_in_job()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        assert interrupt.job_ending() and seen == [signal.SIGTERM]
        with pytest.raises(interrupt.Interrupted) as stop:
            interrupt.raise_if_job_ending(ConnectionResetError("W&B's service is gone"))
        assert stop.value.exit_status == 143
    finally:
        signal.signal(signal.SIGTERM, before)
