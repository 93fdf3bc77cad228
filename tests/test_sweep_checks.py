"""A sweep checks its whole grid before the first job: a bad value anywhere is one line and
exit status 2, with nothing trained and nothing recorded. Each case runs the real command: the
bad grids in a process forked from one that imported the package once (`helpers.entry`), the
good grid as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST
from helpers.entry import run_entry


def _sweep(tmp_path: Path, *args: str, forked: bool = True) -> subprocess.CompletedProcess:
    args = ("-m", *FAST, "logger=[csv]", f"paths.results={tmp_path / 'results'}", *args)
    env = {**os.environ, "TRANSFERLAB_DATA": str(tmp_path / "data")}
    if forked:
        return run_entry(list(args), env, tmp_path)
    cmd = [sys.executable, "-m", "transferlab.cli.run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


CASES = {
    # the example: the bad size is the last value of the grid
    "negative target size": (["target_size=20,-5"], ["target_size=-5", ">= 0"]),
    "bad learning rate among good ones": (
        ["init=scratch", "train.lr=0.01,-1", "seed=0,1"],
        ["train.lr=-1", "train.lr must be > 0"],
    ),
    "fractional seed": (["init=scratch", "seed=0,1.5"], ["seed=1.5", "integer"]),
    "freeze depth one model lacks": (
        ["model=test_vit,test_resnet", "freeze_depth=0,7"],  # 8 depth groups, and 6
        ["model=test_resnet", "freeze_depth=7"],
    ),
    "unknown key added in a grid": (["+freeze_dept=1,2"], ["freeze_dept", "freeze_depth"]),
    # found in the sweep's first job, before the grid is planned
    "typo in a preset argument in a grid": (
        ["trainer.max_epoch=3,4"],
        ["trainer.max_epoch", "did you mean trainer.max_epochs?"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_value_in_grid_stops_the_sweep_before_any_job(case, tmp_path):
    args, fragments = CASES[case]
    proc = _sweep(tmp_path, *args)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    first_job = case == "typo in a preset argument in a grid"
    prefix = "transferlab-run: error: " + ("" if first_job else "sweep job ")
    assert errors[0].startswith(prefix)
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    # nothing trained, nothing recorded, no job started
    study = tmp_path / "results" / "default"
    assert not (study / "records").exists() and not (study / "runs").exists()
    assert not list(study.glob("multirun/*/0"))


def test_bad_grid_under_the_parallel_launcher_stops_the_workers_it_started(tmp_path):
    # The workers start when the plan has jobs to check, and check them in chunks: of two bad
    # jobs, the error names the first in grid order, whichever worker found its job first; the
    # checks still running are stopped, and stderr holds the error line alone.
    # As a user types it: a forked entry point ends without Python's exit handlers, where
    # joblib tells its resource tracker that the stopped workers' folder is gone.
    grid = "target_size=20,-5,-7,30,40,50"
    args = ("hydra/launcher=parallel", "hydra.verbose=transferlab.sweep", grid)
    proc = _sweep(tmp_path, *args, forked=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "sweep job 2 (target_size=-5)" in lines[0], proc.stderr
    assert "started 2 workers" in proc.stdout and "stopped the workers" in proc.stdout
    assert not (tmp_path / "results" / "default" / "records").exists()


def test_good_grid_is_checked_then_runs(tmp_path):
    proc = _sweep(tmp_path, "init=scratch", "train.epochs=1", "seed=0,1", forked=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "planned 2 jobs" in proc.stdout and "(2 composed and checked)" in proc.stdout
    assert len(list((tmp_path / "results" / "default" / "records").glob("*.json"))) == 2


def test_override_hydra_cannot_apply_to_a_sweep_is_one_line(tmp_path):
    # Hydra composes a sweep's base config before any job; its report would be several lines.
    proc = _sweep(tmp_path, "+trainer.num_sanity_val_steps=2", "seed=0,1")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("transferlab-run: error: +trainer.num_sanity_val_steps adds")
    assert not (tmp_path / "results" / "default").exists()
