"""The Slurm path against a real Slurm: `transferlab-run -m hydra/launcher=slurm ...` on the
one-node cluster of `scripts/slurm_local.sh` (CI starts it). The grid and the bad grid are
launched exactly as a user types them; the other launching processes are forked from a process
that imported the package (`helpers.entry`), while Slurm's jobs start as they would on a cluster.

Nothing is mocked: submitit submits sbatch jobs, Slurm runs, signals, requeues, cancels and
times them out, and the tests read back records, W&B offline files, submitit's job logs and
Slurm's own accounting (`sacct`). Without a Slurm these tests are skipped, with the reason.
The tests share one cluster, so they run one after the other (`slurm_cluster`, conftest.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FAST
from helpers import entry
from helpers.hydra_suites import run_suites

from transferlab.store import read_record

SLURM_WAIT_S = 10
TIMEOUT = 420
#: Epochs of the runs that get signalled, requeued or cancelled mid-training: long enough that
#: the run is still training when Slurm kills it, 5 s after its SIGTERM (slurm.conf KillWait);
#: about 15 s of training here, so twice that margin on a machine 1.5x as fast.
LONG_EPOCHS = 80
#: ... and of the run that reaches its one-minute time limit: more than a minute of training.
TIME_LIMIT_EPOCHS = 400
#: Tests of Hydra's plugin suites that run on the Slurm launcher (tests/hydra_suites/suites.py).
HYDRA_SLURM_TESTS = 9
SWEEP_DIR = re.compile(r"sweep of \d+ jobs in (\S+)")
PLANNED = re.compile(r"planned (\d+) jobs in \S+: (\d+) to run, (\d+) done before")


def _slurm_partition() -> str | None:
    """The default partition of a Slurm whose node is up here (None: no Slurm to use)."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=SLURM_WAIT_S
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [line.split() for line in out.splitlines() if len(line.split()) == 2]
    usable = [p for p, state in rows if state in ("idle", "mixed", "allocated")]
    default = [p.rstrip("*") for p in usable if p.endswith("*")]
    return (default or [p.rstrip("*") for p in usable] or [None])[0]


PARTITION = _slurm_partition()
#: Set by CI (.ci/run), which starts a Slurm: there a missing Slurm fails these tests.
REQUIRED = os.environ.get("TRANSFERLAB_REQUIRE_SLURM") == "1"
NO_SLURM = "no Slurm here: `bash scripts/slurm_local.sh start` starts one (CI does)"
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.usefixtures("slurm_cluster"),  # one test at a time on the cluster
    pytest.mark.skipif(PARTITION is None and not REQUIRED, reason=NO_SLURM),
]


@pytest.fixture(autouse=True)
def _slurm_is_up() -> None:
    """Where Slurm is required (CI) but not up, say so instead of timing out in sbatch."""
    assert PARTITION is not None, NO_SLURM


# --------------------------------------------------------------------------------- helpers


def _command(results: Path, study: str, *extra: str) -> list[str]:
    """`transferlab-run -m` with FAST settings (minus those in `extra`) on the Slurm launcher:
    the default partition, no GPU, one core and 2 GB per job, as a laptop's Slurm has them."""
    keys = {arg.split("=", 1)[0] for arg in extra}
    fast = [arg for arg in FAST if arg.split("=", 1)[0] not in keys]
    return [
        sys.executable, "-m", "transferlab.cli.run", "-m", *fast,
        "threads=1", f"paths.results={results}", f"study={study}",
        "hydra/launcher=slurm", f"hydra.launcher.partition={PARTITION}",
        "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=2", *extra,
    ]  # fmt: skip


def _long(*extra: str, epochs: int = LONG_EPOCHS) -> tuple[str, ...]:
    """Settings of one run that trains long enough to be interrupted, checkpointing each epoch."""
    return (
        f"train.epochs={epochs}",
        "callbacks.resume_checkpoint.min_interval_s=0",
        "init=scratch",
        "cohort=false",  # one run per job, with its epoch checkpoint
        "logger=[wandb,csv]",
        *extra,
    )


def _run(cmd: list[str], cwd: Path, status: int = 0, forked: bool = False) -> str:
    """The launching process as a user types it, or (`forked`) forked from a process that
    imported the package (`helpers.entry`); Slurm's jobs start as on a cluster either way."""
    proc = entry.run(cmd, cwd, timeout=TIMEOUT, merged=True, typed=not forked)
    assert proc.returncode == status, proc.stdout[-4000:]
    return proc.stdout


def _records(results: Path, study: str) -> dict[str, dict]:
    return {p.stem: read_record(p) for p in sorted((results / study / "records").glob("*.json"))}


def _sweep_dirs(results: Path, study: str) -> list[Path]:
    return sorted((results / study / "multirun").glob("*"))


def _job_folders(sweep_dir: Path) -> dict[str, Path]:
    """submitit's folder of each Slurm job of a sweep, by job id (`<array>_<task>`; the array's
    own folder holds only the submission script)."""
    found = (sweep_dir / ".submitit").glob("*/*_submitted.pkl")
    return {p.parent.name: p.parent for p in found}


def _job_log(folder: Path) -> str:
    return "".join(p.read_text() for p in sorted(folder.glob("*_log.*")))


def _sacct(*job_ids: str) -> dict[str, dict[str, str]]:
    """Slurm's accounting of whole jobs (no steps): state, start and end, by job id."""
    out = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-o", "JobID,State,Start,End", "-j", ",".join(job_ids)],
        capture_output=True, text=True, check=True, timeout=SLURM_WAIT_S,
    ).stdout  # fmt: skip
    rows = [line.split("|") for line in out.splitlines() if line]
    return {r[0]: {"state": r[1].split()[0], "start": r[2], "end": r[3]} for r in rows}


def _accounted_ends(*job_ids: str) -> dict[str, dict[str, str]]:
    """Slurm's accounting of the jobs once it has every job's end: slurmdbd records an end a
    moment after the job has left the queue. (A job of an array is listed as `<array>_<task>`,
    whichever of its ids it was asked by.)"""

    def ended() -> dict[str, dict[str, str]] | None:
        accounting = _sacct(*job_ids)
        ends = [a["end"] for a in accounting.values()]
        done = len(ends) == len(job_ids) and "Unknown" not in ends
        return accounting if done else None

    return _wait("Slurm to account for the jobs' ends", ended, timeout=SLURM_WAIT_S * 6)


def _queued(*job_ids: str) -> list[str]:
    """Those of the jobs Slurm still has queued or running."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)],
        capture_output=True, text=True, check=False, timeout=SLURM_WAIT_S,
    ).stdout  # fmt: skip
    return out.split()


def _wait(what: str, condition, proc: subprocess.Popen | None = None, timeout: float = TIMEOUT):
    """Poll `condition()` until it returns something true (returned), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        assert proc is None or proc.poll() is None, f"the sweep ended before {what}"
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _checkpoint_at(results: Path, study: str, epoch: int) -> Path | None:
    """The run's epoch checkpoint once it holds `epoch` or later (None before)."""
    for path in (results / study / "runs").glob("*/checkpoints/last.ckpt"):
        try:
            if torch.load(path, weights_only=True)["epoch"] >= epoch:
                return path
        except Exception:  # noqa: BLE001 - written just now: read it again on the next poll
            pass
    return None


def _checkpoints_at(results: Path, study: str, epoch: int) -> int:
    """How many of the study's runs hold an epoch checkpoint at `epoch` or later."""
    count = 0
    for path in (results / study / "runs").glob("*/checkpoints/last.ckpt"):
        try:
            count += torch.load(path, weights_only=True)["epoch"] >= epoch
        except Exception:  # noqa: BLE001 - written just now: read it again on the next poll
            pass
    return count


def _one_wandb_run(run_dir: Path) -> list[int]:
    """The epochs the run's single W&B run logged validation for (asserts there is one run,
    named by the run id)."""
    from helpers.wandb_files import summarize

    (folder,) = (run_dir / "wandb").glob("offline-run-*")
    (log,) = folder.glob("run-*.wandb")
    run = summarize(log)
    assert run["id"] == run_dir.name
    return sorted(int(float(row["epoch_index"])) for row in run["history"] if "val/acc" in row)


def _csv_epochs(run_dir: Path) -> list[int]:
    import pandas as pd

    frame = pd.read_csv(run_dir / "csv" / "metrics.csv")
    return sorted(int(e) for e in frame.dropna(subset=["val/acc"])["epoch"])


# ------------------------------------------------------------------------------------ tests


def test_grid_runs_as_slurm_jobs_that_share_their_sources(tmp_path):
    results = tmp_path / "results"
    grid = ("seed=0,1", "target_size=20,50", "logger=[wandb,csv]")
    out = _run(_command(results, "grid", *grid), tmp_path)
    records = _records(results, "grid")
    targets = {k: r for k, r in records.items() if r["stage"] == "target"}
    sources = {k: r for k, r in records.items() if r["stage"] == "source"}
    assert len(targets) == 4 and len(sources) == 2
    assert all(r["status"] == "completed" for r in records.values())
    # Each target run names the Slurm job it ran in, and that job is one submitit submitted.
    (sweep_dir,) = _sweep_dirs(results, "grid")
    folders = _job_folders(sweep_dir)
    jobs = {r["cluster_job"]["job_id"]: r["cluster_job"] for r in targets.values()}
    assert {f"{j['array_job_id']}_{j['array_task_id']}" for j in jobs.values()} == set(folders)
    assert all(j["partition"] == PARTITION and j["restart_count"] == 0 for j in jobs.values())
    # A job's result is written before its process has left: Slurm accounts for it just after.
    _wait("the jobs to leave the queue", lambda: not _queued(*jobs), timeout=SLURM_WAIT_S * 6)
    accounting = _accounted_ends(*jobs)
    assert {a["state"] for a in accounting.values()} == {"COMPLETED"}, accounting
    for rid in targets:
        run_dir = results / "grid" / "runs" / rid
        assert _one_wandb_run(run_dir) == _csv_epochs(run_dir) == [0, 1]
    # Two jobs (one per target size) needed both sources at once; each source trained once.
    assert len(jobs) == 2
    (first, second) = accounting.values()
    assert first["start"] < second["end"] and second["start"] < first["end"], accounting
    assert {r["source_run_id"] for r in targets.values()} == set(sources)
    for rid in sources:
        log = (results / "grid" / "runs" / rid / "run.log").read_text()
        assert log.count("`Trainer.fit` stopped") == 1, log
    # The launching process shows each run's progress line as its job ends.
    shown = re.findall(r"\[\d/4\] job \d completed run (\w+): test acc", out)
    assert sorted(shown) == sorted(targets), out[-3000:]
    assert "sweep finished: 4 completed, 0 skipped, 0 failed" in out


def test_requeued_job_resumes_from_its_checkpoint_as_one_record_and_one_wandb_run(tmp_path):
    results = tmp_path / "results"
    proc = entry.start(_command(results, "pre", *_long("seed=0")), tmp_path / "sweep.log", tmp_path)
    _wait("an epoch checkpoint", lambda: _checkpoint_at(results, "pre", 2), proc)
    (sweep_dir,) = _sweep_dirs(results, "pre")
    (job_id,) = _job_folders(sweep_dir)
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=SLURM_WAIT_S)  # pre-emption
    assert proc.wait(timeout=TIMEOUT) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    (record,) = _records(results, "pre").values()
    assert record["status"] == "completed" and record["cluster_job"]["restart_count"] == 1
    assert len(record["val_curve"]) == LONG_EPOCHS
    assert "resuming from" in _job_log(_job_folders(sweep_dir)[job_id])
    run_dir = results / "pre" / "runs" / record["run_id"]
    # No gap and no duplicate epoch: the restored epochs are logged again, once, then the rest.
    assert _one_wandb_run(run_dir) == list(range(LONG_EPOCHS))


def test_job_at_its_time_limit_is_requeued_by_submitit_and_resumes(tmp_path):
    results = tmp_path / "results"
    # One minute per attempt, and submitit's signal asked for 5 s before its end. Slurm sends
    # it up to 30 s earlier still (it checks time limits every 30 s): 25-55 s into each attempt,
    # once the job has trained a while. The run trains for more than a minute: it needs more
    # than one attempt.
    limits = ("hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=5")
    out = _run(
        _command(results, "limit", *_long("seed=0", *limits, epochs=TIME_LIMIT_EPOCHS)),
        tmp_path,
        forked=True,
    )
    (record,) = _records(results, "limit").values()
    assert record["status"] == "completed", out[-3000:]
    assert record["cluster_job"]["restart_count"] >= 1
    (sweep_dir,) = _sweep_dirs(results, "limit")
    (folder,) = _job_folders(sweep_dir).values()
    log = _job_log(folder)
    assert "Job has timed out" in log and "resuming from" in log
    run_dir = results / "limit" / "runs" / record["run_id"]
    assert _one_wandb_run(run_dir) == list(range(TIME_LIMIT_EPOCHS))


def test_cancelled_job_leaves_no_record_and_a_relaunch_trains_only_it(tmp_path):
    results = tmp_path / "results"
    cmd = _command(results, "cancel", *_long("seed=0,1"))
    proc = entry.start(cmd, tmp_path / "sweep.log", tmp_path)
    # Both runs train at once (one core each); cancel one of the two jobs mid-training.
    _wait("two runs mid-training", lambda: _checkpoints_at(results, "cancel", 2) == 2, proc)
    (sweep_dir,) = _sweep_dirs(results, "cancel")
    jobs = sorted(_job_folders(sweep_dir))
    assert len(jobs) == 2
    subprocess.run(["scancel", jobs[0]], check=True, timeout=SLURM_WAIT_S)
    status = proc.wait(timeout=TIMEOUT)
    sweep_log = (tmp_path / "sweep.log").read_text()
    assert status != 0 and "Traceback" not in sweep_log, sweep_log[-3000:]
    assert _accounted_ends(jobs[0])[jobs[0]]["state"] == "CANCELLED"
    (finished,) = _records(results, "cancel").values()  # the other job's run only
    assert finished["cluster_job"]["array_task_id"] == jobs[1].split("_")[1]
    out = _run(cmd, tmp_path, forked=True)
    assert PLANNED.search(out).groups()[1:] == ("1", "1"), out[-2000:]
    records = _records(results, "cancel")
    assert len(records) == 2 and all(r["status"] == "completed" for r in records.values())
    assert records[finished["run_id"]] == finished  # kept, not trained again


def test_jobs_finish_after_the_launching_process_is_killed(tmp_path):
    results = tmp_path / "results"
    # Three one-core jobs on this node's cores: some wait in the queue.
    cmd = _command(results, "orphan", "init=scratch", "cohort=false", "seed=0,1,2")
    proc = entry.start(cmd, tmp_path / "sweep.log", tmp_path)
    sweep_dir = _wait("the sweep folder", lambda: _sweep_dirs(results, "orphan"), proc)[0]
    jobs = _wait("three submitted jobs", lambda: len(_job_folders(sweep_dir)) == 3, proc)
    jobs = list(_job_folders(sweep_dir))
    proc.send_signal(signal.SIGKILL)  # the login node's process dies; Slurm has the jobs
    proc.wait(timeout=TIMEOUT)
    _wait("the jobs to leave the queue", lambda: not _queued(*jobs))
    assert {a["state"] for a in _accounted_ends(*jobs).values()} == {"COMPLETED"}
    records = _records(results, "orphan")
    assert len(records) == 3 and all(r["status"] == "completed" for r in records.values())
    out = _run(cmd, tmp_path, forked=True)
    assert PLANNED.search(out).groups()[1:] == ("0", "3"), out[-2000:]


def test_bad_grid_value_is_refused_before_anything_is_submitted(tmp_path):
    results = tmp_path / "results"
    before = _job_count()
    cmd = _command(results, "bad", "init=scratch", "target_size=20,-5")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=TIMEOUT)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "-5" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert _job_count() == before and not _records(results, "bad")


def test_hydra_launcher_suite_passes_against_the_slurm_launcher():
    """Hydra's launcher suites on `hydra/launcher=transferlab_slurm` (tests/test_hydra_suites.py
    runs the rest of them)."""
    counts, out = run_suites("slurm")
    assert counts.get("passed") == HYDRA_SLURM_TESTS and not counts.get("failed"), out[-2000:]


def _job_count() -> int:
    """Jobs Slurm has ever accounted for on this cluster."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-a", "-P", "-S", "2000-01-01", "-o", "JobID"],
        capture_output=True, text=True, check=True, timeout=SLURM_WAIT_S,
    ).stdout  # fmt: skip
    return len(out.split())
