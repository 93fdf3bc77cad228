"""Studies as real multirun sweeps: kill and resume, re-launch, concurrent sweeps, damaged
store files, failing grid points, launchers and the progress lines.

Every test starts `transferlab-run` (`python -m transferlab.cli.run`) in real processes on a
tiny grid: the relaunch of a finished study as a user types it, the others forked from a process
that imported the package (`helpers.entry`); nothing of the launcher or the training is mocked.
Only a SLURM cluster is missing here: for it, the launcher config is composed and checked (see
the last test).
"""

from __future__ import annotations

import contextlib
import json
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
from conftest import CONF_DIR, FAST
from helpers import entry

from transferlab.models import load_checkpoint
from transferlab.store import read_record, run_id, stage_config

#: One worker runs this file: its module fixture is built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_sweep_reliability")]

TIMEOUT = 420
# The grid most tests sweep: 2 seeds x 2 target sizes, each target run after its source.
GRID = {"seed": ["0", "1"], "target_size": ["20", "50"]}
PROGRESS = re.compile(
    r"\[(\d+)/(\d+)\] job (\d+) (\w+) run \S+(?:: [^;]*)?; elapsed \S+, about \S+ left"
)
FINISHED = re.compile(
    r"sweep finished: (\d+) completed, (\d+) skipped, (\d+) failed, (\d+) diverged, "
    r"(\d+) invalid of (\d+) jobs"
)
SWEEP_DIR = re.compile(r"sweep of \d+ jobs in (\S+)")


# --------------------------------------------------------------------------------- helpers


def _args(results: Path, study: str, *extra: str, grid: dict | None = None) -> list[str]:
    """FAST settings (minus the keys set in `extra` or swept), one thread, results and study."""
    grid = GRID if grid is None else grid
    swept = {*grid, *(arg.split("=", 1)[0] for arg in extra)}
    fast = [arg for arg in FAST if arg.split("=", 1)[0] not in swept]
    sweep = [f"{key}={','.join(values)}" for key, values in grid.items()]
    return [*fast, "threads=1", f"paths.results={results}", f"study={study}", *extra, *sweep]


def _command(*args: str, multirun: bool = True) -> list[str]:
    return [sys.executable, "-m", "transferlab.cli.run", *(["-m"] if multirun else []), *args]


def _run(
    cmd: list[str], cwd: Path, status: int = 0, forked: bool = True
) -> subprocess.CompletedProcess:
    proc = entry.run(cmd, cwd, timeout=TIMEOUT, merged=True, typed=not forked)
    assert proc.returncode == status, proc.stdout[-4000:]
    return proc


def _points(grid: dict) -> list[list[str]]:
    points = [[]]
    for key, values in grid.items():
        points = [[*p, f"{key}={v}"] for p in points for v in values]
    return points


def _expected_ids(*extra: str, grid: dict | None = None) -> tuple[dict, dict]:
    """Run ids of each grid point, computed from the composed config, not from the store.

    Returns ({point: target id}, {point: source id or None}), a point being its overrides.
    """
    from hydra import compose, initialize_config_dir

    import transferlab.cli.run  # noqa: F401 - registers the tl.uid resolver

    targets, sources = {}, {}
    grid = GRID if grid is None else grid
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for point in _points(grid):
            overrides = _args(Path("/unused"), "unused", *extra, *point, grid={})
            cfg = compose(config_name="config", overrides=overrides)
            source = run_id(stage_config(cfg, "source")) if cfg.init == "source" else None
            targets[tuple(point)] = run_id(stage_config(cfg, "target", source))
            sources[tuple(point)] = source
    return targets, sources


def _records(results: Path, study: str) -> dict[str, dict]:
    """Every record of the study, each read and checked (a torn one fails the test)."""
    folder = results / study / "records"
    return {p.stem: read_record(p) for p in sorted(folder.glob("*.json"))}


def _no_temp_files(results: Path, study: str) -> None:
    leftovers = [p.name for p in (results / study / "records").iterdir() if ".tmp" in p.name]
    assert not leftovers, f"temporary record files left behind: {leftovers}"


def _sweep_dir(output: str) -> Path:
    found = SWEEP_DIR.findall(output)
    assert len(found) == 1, f"expected one sweep in the output, got {found}"
    return Path(found[0])


def _summary(output: str) -> dict:
    return json.loads((_sweep_dir(output) / "sweep_summary.json").read_text())


def _offline_runs(results: Path, study: str) -> set[str]:
    runs = results / study / "runs"
    return {str(p.relative_to(runs)) for p in runs.glob("*/wandb/offline-run-*")}


def _written(job: Path, kind: str) -> float:
    """When submitit wrote a job's `*_<kind>.pkl` (`submitted`: at submission, `result`: as
    the job ended)."""
    (found,) = job.glob(f"*_{kind}.pkl")
    return found.stat().st_mtime


def _max_concurrent(records: list[dict]) -> int:
    """Most runs that overlapped in time, from started_at/finished_at (whole seconds).

    Intervals are half-open, so a run started in the second another one finished does not
    count as overlapping: rounding down both times never makes two runs look concurrent.
    """
    events = []
    for record in records:
        events.append((record["started_at"], 1))
        events.append((record["finished_at"], -1))
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts
        running += step
        peak = max(peak, running)
    return peak


# ----------------------------------------------------------------------- 1. kill and resume


def test_killed_sweep_resumes_from_epoch_checkpoint(tmp_path):
    results, epochs, kill_epoch = tmp_path / "results", 40, 12
    grid = {"seed": ["0", "1"], "target_size": ["20"]}
    # Throttled resume checkpoints (at most every 0.3 s, a few epochs here), as in real runs.
    extra = (
        f"train.epochs={epochs}",
        "resume=true",
        "logger=[csv]",
        "callbacks.resume_checkpoint.min_interval_s=0.3",
        "cohort=false",  # one run per job: a cohort writes no epoch checkpoint
    )
    cmd = _command(*_args(results, "kill", *extra, grid=grid))
    # Its own process group: the kill takes the whole sweep, as a pre-empted job would go.
    proc = entry.start(cmd, tmp_path / "first.log", tmp_path, new_session=True)
    victim, deadline = None, time.monotonic() + TIMEOUT
    try:
        while victim is None:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no target run reached the kill epoch"
            for ckpt in (results / "kill" / "runs").glob("*/checkpoints/last.ckpt"):
                try:
                    state = torch.load(ckpt, map_location="cpu", weights_only=False)
                except Exception:  # noqa: BLE001 - being written; look again
                    continue
                if state["epoch"] >= kill_epoch:  # a target run (sources train 2 epochs)
                    victim = ckpt.parent.parent.name
                    break
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    checkpoint = results / "kill" / "runs" / victim / "checkpoints" / "last.ckpt"
    saved_epoch = torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"]
    assert saved_epoch >= kill_epoch  # last.ckpt follows the run, not only improved epochs
    assert not (results / "kill" / "records" / f"{victim}.json").exists()

    out = _run(cmd, tmp_path).stdout
    targets, sources = _expected_ids(*extra, grid=grid)
    assert victim in targets.values()
    records = _records(results, "kill")
    assert set(records) == set(targets.values()) | set(sources.values())
    assert all(r["status"] == "completed" for r in records.values())
    _no_temp_files(results, "kill")
    # The killed run went on from its checkpoint, not from epoch 0, and has its whole curve.
    assert f"resuming from {checkpoint}" in out
    run_log = (results / "kill" / "runs" / victim / "run.log").read_text()
    assert f"Restoring states from the checkpoint path at {checkpoint}" in run_log
    resumed = records[victim]
    assert [row["epoch"] for row in resumed["val_curve"]] == list(range(epochs))
    assert resumed["best_epoch"] is not None and resumed["metrics"]["test"]
    assert not checkpoint.parent.exists()  # a finished run drops its Lightning checkpoints
    # The resumed attempt trained only the epochs after the checkpoint (its csv log is fresh).
    rows = (results / "kill" / "runs" / victim / "csv" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    cols = [row.split(",") for row in rows[1:]]
    loss, epoch = header.index("train/loss"), header.index("epoch")
    restored = header.index("restored_from_checkpoint")  # rows logged again, not trained
    trained = {int(float(row[epoch])) for row in cols if row[loss] and not row[restored]}
    relogged = {int(float(row[epoch])) for row in cols if row[loss] and row[restored]}
    assert relogged == set(range(saved_epoch + 1))  # the restored curve is whole
    assert trained == set(range(saved_epoch + 1, epochs))
    summary = _summary(out)
    assert summary["completed"] + summary["skipped"] == summary["jobs"] == 2
    assert summary["completed"] >= 1
    # Throughput counts the samples of the resumed attempt only (it was 4-5x too high when
    # the restored sample count of the epochs before the kill was divided by the new time).
    other = next(r for r in records.values() if r["stage"] == "target" and r["run_id"] != victim)
    assert resumed["train_samples_per_s"] < 2.5 * other["train_samples_per_s"]


# --------------------------------------------- 3. two sweeps of one study at once (fixture)


@pytest.fixture(scope="module")
def concurrent_study(tmp_path_factory):
    """Two sweeps of the same study and grid, started together in two processes (W&B on)."""
    root = tmp_path_factory.mktemp("concurrent")
    results = root / "results"
    extra = ("logger=[wandb,csv]",)
    cmd = _command(*_args(results, "conc", *extra))
    procs = [entry.start(cmd, root / f"sweep{i}.log", root) for i in range(2)]
    for proc in procs:
        proc.wait(timeout=TIMEOUT)
    outputs = [(root / f"sweep{i}.log").read_text() for i in range(2)]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-4000:]
    targets, sources = _expected_ids(*extra)
    return {
        "root": root,
        "results": results,
        "cmd": cmd,
        "outputs": outputs,
        "targets": targets,
        "sources": sources,
    }


def test_concurrent_sweeps_train_every_run_once(concurrent_study):
    results, outputs = concurrent_study["results"], concurrent_study["outputs"]
    targets, sources = concurrent_study["targets"], concurrent_study["sources"]
    assert len(set(targets.values())) == 4 and None not in sources.values()
    sweep_dirs = {_sweep_dir(out) for out in outputs}
    assert len(sweep_dirs) == 2, "two sweeps started together shared a folder"

    records = _records(results, "conc")  # every record parses: none torn
    assert set(records) == set(targets.values()) | set(sources.values())
    assert all(r["status"] == "completed" for r in records.values())
    for point, rid in targets.items():
        assert records[rid]["source_run_id"] == sources[point]
    _no_temp_files(results, "conc")
    # Each grid point trained by one of the two sweeps, skipped by the other.
    summaries = [_summary(out) for out in outputs]
    assert sum(s["completed"] for s in summaries) == 4
    assert sum(s["skipped"] for s in summaries) == 4
    assert all(s["failed"] == s["diverged"] == s["invalid"] == 0 for s in summaries)
    # One training attempt per run, sources included: one offline W&B run folder each.
    offline = _offline_runs(results, "conc")
    for rid in records:
        mine = [p for p in offline if p.startswith(f"{rid}/")]
        assert len(mine) == 1, f"run {rid} trained {len(mine)} times: {mine}"
    assert len(offline) == len(records)
    for source in set(sources.values()):
        cached = results / "cache" / "sources" / source
        assert read_record(cached / "record.json", run_id=source)["status"] == "completed"
        assert load_checkpoint(cached / "model.pt")["model_name"] == "test_resnet"


# ------------------------------------------------------------------ 8. progress lines


def test_progress_line_per_job_and_summary_line(concurrent_study):
    for out in concurrent_study["outputs"]:
        lines = PROGRESS.findall(out)
        assert sorted(int(k) for k, *_ in lines) == [1, 2, 3, 4], lines
        assert {int(n) for _, n, *_ in lines} == {4}
        # the seeds of a target size train as one cohort job: two runs per job
        assert sorted(int(job) for _, _, job, _ in lines) == [0, 0, 1, 1]
        assert {outcome for *_, outcome in lines} <= {"completed", "skipped"}
        finished = FINISHED.findall(out)
        assert len(finished) == 1, "no (or more than one) end-of-sweep summary line"
        counts = dict(
            zip(
                ("completed", "skipped", "failed", "diverged", "invalid", "jobs"),
                map(int, finished[0]),
            )
        )
        summary = _summary(out)
        assert counts == {k: summary[k] for k in counts}
        assert counts["completed"] + counts["skipped"] == counts["jobs"] == 4
        outcomes = [o for *_, o in lines]
        assert outcomes.count("completed") == counts["completed"]


# ------------------------------------------------------------- 2. re-launch trains nothing


def test_relaunch_of_finished_study_trains_nothing(concurrent_study):
    results = concurrent_study["results"]
    offline_before = _offline_runs(results, "conc")
    folder = results / "conc" / "records"
    before = {p.name: p.read_bytes() for p in folder.glob("*.json")}
    logs_before = {p: p.read_text() for p in (results / "conc" / "runs").glob("*/run.log")}
    assert logs_before
    # as a user types it
    out = _run(concurrent_study["cmd"], concurrent_study["root"], forked=False).stdout
    summary = _summary(out)
    assert summary["jobs"] == summary["skipped"] == 4
    assert summary["completed"] == summary["failed"] == 0
    assert _offline_runs(results, "conc") == offline_before
    assert {p.name: p.read_bytes() for p in folder.glob("*.json")} == before
    assert "Trainer.fit" not in out
    assert all(  # no Trainer ran at all: every run's log file is as the first launch left it
        p.read_text() == logs_before[p] for p in logs_before
    )


# -------------------------------------------------- 4. damaged store files are redone


def test_corrupted_source_checkpoint_and_torn_record_are_redone(concurrent_study, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(concurrent_study["results"], results)
    targets, sources = concurrent_study["targets"], concurrent_study["sources"]
    torn = targets[("seed=0", "target_size=20")]
    source = sources[("seed=0", "target_size=20")]
    intact = targets[("seed=0", "target_size=50")]  # same source, record whole
    replanted = targets[("seed=1", "target_size=20")]
    store = results / "conc"

    record_path = store / "records" / f"{torn}.json"
    text = record_path.read_text()
    record_path.write_text(text[: len(text) // 2])  # half its JSON
    cache = results / "cache" / "sources" / source
    (cache / "model.pt").write_bytes(os.urandom(4096))  # garbage instead of the weights
    cached_before = json.loads((cache / "record.json").read_text())
    # A run without a record whose epoch checkpoint is garbage: started afresh, not loaded.
    (store / "records" / f"{replanted}.json").unlink()
    torn_ckpt = store / "runs" / replanted / "checkpoints" / "last.ckpt"
    torn_ckpt.parent.mkdir(parents=True)
    torn_ckpt.write_bytes(b"PK\x03\x04 not a checkpoint")
    intact_before = (store / "records" / f"{intact}.json").read_bytes()

    def attempts(rid: str) -> set[str]:
        return {p.name for p in (store / "runs" / rid / "wandb").glob("offline-run-*")}

    first = {rid: attempts(rid) for rid in (source, torn)}
    # one run per job: a cohort starts its members afresh and reads no epoch checkpoint
    cmd = _command(*_args(results, "conc", "logger=[wandb,csv]", "cohort=false"))
    out = _run(cmd, tmp_path).stdout
    assert f"cached source {source} is damaged" in out
    assert f"checkpoint {torn_ckpt} is unreadable" in out
    summary = _summary(out)
    assert (summary["completed"], summary["skipped"], summary["jobs"]) == (2, 2, 4)

    # The source was trained again: a new W&B attempt (replacing the first: one W&B run per
    # run id), a new cache record, sound weights.
    assert len(attempts(source)) == 1 and attempts(source).isdisjoint(first[source])
    cached_after = read_record(cache / "record.json", run_id=source)
    assert cached_after["status"] == "completed"
    assert cached_after["wall_time_s"] != cached_before["wall_time_s"]
    assert load_checkpoint(cache / "model.pt")["model_name"] == "test_resnet"
    # The torn record is whole and completed again, from the retrained source.
    redone = read_record(record_path)
    assert redone["status"] == "completed" and redone["source_run_id"] == source
    assert redone["source_checkpoint"] == f"cache/sources/{source}/model.pt"
    assert [row["epoch"] for row in redone["val_curve"]] == [0, 1]
    assert len(attempts(torn)) == 1 and attempts(torn).isdisjoint(first[torn])
    fresh = read_record(store / "records" / f"{replanted}.json")
    assert fresh["status"] == "completed"
    assert [row["epoch"] for row in fresh["val_curve"]] == [0, 1]
    assert not torn_ckpt.parent.exists()
    assert (store / "records" / f"{intact}.json").read_bytes() == intact_before
    _no_temp_files(results, "conc")


# ------------------------------------------------- 5. failing grid points, sweep goes on


def test_diverged_and_failed_points_are_recorded_and_sweep_goes_on(tmp_path):
    results = tmp_path / "results"
    # precision `bogus` makes the Trainer raise inside the run (a crash: status failed);
    # lr 1e30 with plain SGD overflows (diverged). A bad value such as lr -1 stops the whole
    # grid before any job starts (tests/test_sweep_checks.py).
    grid = {"trainer.precision": ["32-true", "bogus"], "train.lr": ["1e30", "0.001"]}
    extra = ("init=scratch", "optimizer=sgd", "scheduler=none", "logger=[csv]")
    # The optimizer named by a glob over its config group: the job count must still be known.
    globbed = [x if x != "optimizer=sgd" else "optimizer=glob(sg*)" for x in extra]
    proc = _run(_command(*_args(results, "fail", *globbed, grid=grid)), tmp_path, status=1)
    targets, _ = _expected_ids(*extra, grid=grid)
    records = _records(results, "fail")
    assert set(records) == set(targets.values())
    status = {point: records[rid]["status"] for point, rid in targets.items()}
    assert status == {
        ("trainer.precision=32-true", "train.lr=1e30"): "diverged",
        ("trainer.precision=32-true", "train.lr=0.001"): "completed",
        ("trainer.precision=bogus", "train.lr=1e30"): "failed",
        ("trainer.precision=bogus", "train.lr=0.001"): "failed",
    }
    diverged = records[targets[("trainer.precision=32-true", "train.lr=1e30")]]
    assert "non-finite" in diverged["error"] and diverged["metrics"]["test"] == {}
    failed = records[targets[("trainer.precision=bogus", "train.lr=0.001")]]
    assert "bogus" in failed["error"]
    summary = _summary(proc.stdout)
    assert summary["jobs"] == 4
    assert (summary["completed"], summary["diverged"], summary["failed"]) == (1, 1, 2)
    assert summary["invalid"] == 0 and summary["skipped"] == 0
    assert len(summary["failures"]) == 2  # failed jobs, with their errors
    assert all(f["error"] for f in summary["failures"])
    assert sorted(int(k) for k, *_ in PROGRESS.findall(proc.stdout)) == list(range(1, 5))
    # The failed jobs set the exit status, after the summary; the diverged one does not.
    tail = proc.stdout[proc.stdout.index("sweep finished") :]
    assert "2 of 4 sweep jobs failed" in tail


def test_target_runs_of_a_diverged_source_are_results_kept_on_relaunch(tmp_path):
    results = tmp_path / "results"
    # The source stage's lr 1e30 with plain SGD overflows; the target budget is sane.
    extra = ("optimizer=sgd", "scheduler=none", "pretrain.lr=1e30", "logger=[csv]")
    cmd = _command(*_args(results, "div", *extra))
    first = _run(cmd, tmp_path, status=0).stdout  # a diverged run is a result, not a failure
    targets, sources = _expected_ids(*extra)
    records = _records(results, "div")
    assert set(records) == {*targets.values(), *sources.values()}
    for point, rid in targets.items():
        source = sources[point]
        assert records[source]["status"] == "diverged"
        assert records[rid]["status"] == "diverged" and records[rid]["source_run_id"] == source
        assert records[rid]["error"].startswith(f"source stage {source} diverged: non-finite")
        assert not records[rid]["metrics"].get("test")  # nothing trained, nothing tested
    summary = _summary(first)
    assert (summary["diverged"], summary["failed"], summary["jobs"]) == (4, 0, 4)
    # The analysis reads them as diverged runs, like any other.
    from transferlab.analysis.records import flatten_record

    assert {flatten_record(records[rid])["status"] for rid in targets.values()} == {"diverged"}
    before = {p.name: p.read_bytes() for p in (results / "div" / "records").glob("*.json")}
    again = _run(cmd, tmp_path, status=0).stdout
    summary = _summary(again)
    assert summary["skipped"] == summary["jobs"] == 4 and summary["diverged"] == 0
    assert "Trainer.fit" not in again
    assert {p.name: p.read_bytes() for p in (results / "div" / "records").glob("*.json")} == before


# ------------------------------------------------------------- 6. launchers, real processes


def test_parallel_launcher_runs_grid_in_two_worker_processes(tmp_path):
    results = tmp_path / "results"
    # verbose=true: the launcher's own lines (dropped from the console by default) are shown.
    extra = (
        "init=scratch",
        "logger=[csv]",
        "hydra/launcher=parallel",
        "verbose=true",
        "cohort=false",
        "hydra.verbose=transferlab.sweep",  # the warm-up's lines
    )
    out = _run(_command(*_args(results, "par", *extra)), tmp_path).stdout
    assert "Joblib.Parallel(n_jobs=2" in out
    # The two workers started for the plan's checks, and imported before them.
    assert "started 2 workers to import for the plan's checks and the jobs" in out
    assert re.search(r"workers \[\d+, \d+\] imported .*transferlab.cli.run", out), out[-3000:]
    targets, _ = _expected_ids("init=scratch", "logger=[csv]")
    records = _records(results, "par")
    assert set(records) == set(targets.values())
    assert all(r["status"] == "completed" for r in records.values())
    assert all(r["config"]["threads"] == 1 for r in records.values())
    assert _max_concurrent(list(records.values())) <= 2
    summary = _summary(out)
    assert summary["completed"] == summary["jobs"] == 4
    # Jobs ending in other processes still number themselves 1..N, each k once.
    assert sorted(int(k) for k, *_ in PROGRESS.findall(out)) == [1, 2, 3, 4]


def test_submitit_local_launcher_runs_at_most_a_batch_at_once(tmp_path):
    results = tmp_path / "results"
    # Two grid points in batches of one: the second job starts once the first has ended.
    grid = {"seed": ["0", "1"], "target_size": ["20"]}
    extra = (
        "init=scratch",
        "logger=[csv]",
        "hydra/launcher=local",
        "hydra.sweeper.max_batch_size=1",
        "cohort=false",  # one process per run, to count them
    )
    out = _run(_command(*_args(results, "loc", *extra, grid=grid)), tmp_path).stdout
    targets, _ = _expected_ids("init=scratch", "logger=[csv]", grid=grid)
    records = _records(results, "loc")
    assert set(records) == set(targets.values()) and len(records) == 2
    assert all(r["status"] == "completed" for r in records.values())
    assert all(r["config"]["threads"] == 1 for r in records.values())
    assert _max_concurrent(list(records.values())) <= 1  # whole seconds: a coarse check
    sweep_dir = _sweep_dir(out)
    jobs = [p for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()]
    assert len(jobs) == 2, "each grid point should be its own submitit job (process)"
    # Runs can take less than the second the records' times resolve: submitit's own files
    # say it. The second job was submitted after the first had written its result.
    first, second = sorted(jobs, key=lambda job: _written(job, "submitted"))
    assert _written(second, "submitted") >= _written(first, "result")
    # Progress written from the job processes reaches the sweep's summary.
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert summary["completed"] == summary["jobs"] == 2
    lines = (sweep_dir / "sweep_progress.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["run_id"] for x in lines) == sorted(targets.values())


def test_slurm_launcher_composes_with_gpus_partition_timeout_and_requeue():
    # No SLURM cluster exists here: this checks the launcher config only. Requeue itself is
    # the kill/resume path above (a requeued job starts again and resumes from last.ckpt).
    from hydra import compose, initialize_config_dir
    from hydra.utils import get_class

    import transferlab.cli.run  # noqa: F401

    overrides = [
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=2",
        "hydra.launcher.timeout_min=30",
        "hydra.launcher.max_num_timeout=3",
        "trainer=gpu",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
        default = compose(
            config_name="config", overrides=["hydra/launcher=slurm"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node) == ("gpu", 2)
    assert (launcher.timeout_min, launcher.max_num_timeout) == (30, 3)
    assert launcher.tasks_per_node == 1 and launcher.signal_delay_s > 0
    assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"  # per sweep
    # The preset's own values: one GPU per job, requeued up to 5 times.
    assert default.hydra.launcher.gpus_per_node == 1
    assert default.hydra.launcher.max_num_timeout == 5
    assert cfg.resume is True  # a requeued job resumes from its epoch checkpoint


# -------------------------------------------- 7. single runs started in the same second


def test_single_runs_started_together_get_their_own_output_folders(tmp_path):
    results = tmp_path / "results"
    cmd = _command(
        *_args(results, "single", "init=scratch", "logger=[csv]", grid={}), multirun=False
    )
    time.sleep(1 - time.time() % 1)  # start both at the top of a second
    procs = [entry.start(cmd, tmp_path / f"run{i}.log", tmp_path) for i in range(2)]
    for proc in procs:
        proc.wait(timeout=TIMEOUT)
    outputs = [(tmp_path / f"run{i}.log").read_text() for i in range(2)]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    dirs = sorted(p.name for p in (results / "single" / "hydra").iterdir())
    assert len(dirs) == 2, dirs
    for name in dirs:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}", name), name
    # Same config: one process trained it, the other waited on the run lock and skipped it.
    ends = sorted(re.search(r"run \S+ (completed|skipped); test acc", o).group(1) for o in outputs)
    assert ends == ["completed", "skipped"]
    assert len(_records(results, "single")) == 1
