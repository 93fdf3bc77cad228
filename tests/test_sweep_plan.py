"""The sweep plan: jobs composed the fast way equal Hydra's own composition; grid points whose
run is done or repeats another job's run are left out before launch and counted as skipped;
a re-launch of a finished study reads run ids from the plan cache and composes nothing."""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST
from helpers import entry
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from transferlab._helpers import copy_config
from transferlab.store.identity import run_id, stage_configs
from transferlab.sweep.plan import JobComposer, PlannedLoader, job_config

# Group overrides (presets, a package), plain values, an added key, a preset's argument, a mapping.
JOBS = [
    ["data@source=digits_rot45", "init=source", "seed=0", "train.lr=0.01"],
    ["data@source=shapes", "init=scratch", "seed=1", "+trainer.gradient_clip_val=1.0"],
    ["model=test_vit", "optimizer=sgd", "freeze_depth=2", "target_size=20"],
    ["data@source=shapes", "init=source", "seed=3", "augment=flip_crop", "train.lr=0.1"],
    # a mapping given to a group is a config override, applied in command-line order
    ["optimizer.weight_decay=0.5", "optimizer={weight_decay: 0.2}"],
]


def test_fast_composition_equals_hydras_for_every_job():
    with initialize_config_module("transferlab.conf", version_base=None):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            "config", overrides=["experiment=quickstart"], run_mode=RunMode.MULTIRUN
        )
        composer = JobComposer(loader, master)
        for job in JOBS * 2:  # the second round reuses the cached compositions
            hydra = loader.load_sweep_config(master_config=master, sweep_overrides=job)
            fast = composer.compose(job)
            assert OmegaConf.to_container(fast) == OmegaConf.to_container(job_config(hydra)), job
            # as the launcher gets it: the hydra node too (the job's overrides, its folder name)
            full = PlannedLoader(composer).load_sweep_config(master, job)
            assert OmegaConf.to_container(full) == OmegaConf.to_container(hydra), job
            assert full.hydra.job.override_dirname == hydra.hydra.job.override_dirname != ""
        assert len(composer._composed) == 5  # one per distinct choice of presets
        # a launcher that runs jobs elsewhere gets Hydra's own loader
        assert pickle.loads(pickle.dumps(PlannedLoader(composer))).__class__ is loader.__class__


def test_a_config_copy_is_a_deep_copy():
    # The plan copies configs by a pickle round trip (`copy_config`): what deepcopy gives.
    with initialize_config_module("transferlab.conf", version_base=None):
        loader = GlobalHydra.instance().config_loader()
        cfg = loader.load_configuration(
            "config", overrides=["experiment=quickstart"], run_mode=RunMode.MULTIRUN
        )
        with open_dict(cfg):
            cfg.stamp = "${now:%H:%M:%S.%f}"
        stamp = cfg.stamp  # resolved once: cached in the config
    fast, slow = copy_config(cfg), copy.deepcopy(cfg)
    for out in (fast, slow):
        assert OmegaConf.to_container(out) == OmegaConf.to_container(cfg)
        assert OmegaConf.get_cache(out) == OmegaConf.get_cache(cfg) != {}
        assert OmegaConf.is_struct(out) and OmegaConf.is_struct(out.train)
        assert OmegaConf.is_readonly(out.hydra) is OmegaConf.is_readonly(cfg.hydra) is False
    assert fast.stamp == slow.stamp == stamp
    fast.train.lr = 123.0
    assert cfg.train.lr != 123.0  # nothing shared
    # A node inside a config, or one holding what cannot be pickled: deepcopy's copy.
    assert copy_config(cfg.train) == cfg.train
    odd = OmegaConf.create({"f": lambda: 1}, flags={"allow_objects": True})
    assert copy_config(odd).f is odd.f


def test_source_run_ids_read_from_the_plans_memo_equal_their_own():
    # A sweep's jobs share a few source stages: the plan hashes each once (`known_run_id`).
    # Sources with and without their own pretrain seed, a source at another size, a scratch run.
    jobs = [
        [f"data@source={source}", f"seed={seed}", f"train.lr={lr}", *extra]
        for source in ("digits_rot45", "shapes")
        for seed in (0, 1)
        for lr in (0.01, 0.1)
        for extra in ([], ["pretrain.seed=7"], ["source_size=300"], ["init=scratch"])
    ]
    with initialize_config_module("transferlab.conf", version_base=None):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            "config", overrides=["experiment=quickstart"], run_mode=RunMode.MULTIRUN
        )
        composer, known = JobComposer(loader, master), {}
        sources = set()
        for job in jobs:
            cfg = composer.compose(job)
            alone, memo = stage_configs(cfg), stage_configs(cfg, known)
            assert run_id(memo[1]) == run_id(alone[1]), job
            if alone[0] is not None:
                assert memo[1].source_run_id == run_id(alone[0]), job
                sources.add(run_id(alone[0]))
    # a source per dataset and seed (its own or the pretrain seed), and per size
    assert len(known) == len(sources) == 2 * (2 + 1 + 2)


def test_chunks_of_a_grid_keep_its_order_and_differ_by_at_most_one_job():
    from transferlab.sweep.plan import chunks

    for n in (0, 1, 5, 8, 9, 100):
        for count in (1, 3, 8):
            parts = chunks(list(range(n)), count)
            assert [job for part in parts for job in part] == list(range(n))
            assert len(parts) == min(count, n) and all(parts)
            assert max(map(len, parts), default=0) - min(map(len, parts), default=0) <= 1


def test_jobs_checked_in_other_processes_equal_those_checked_here(tmp_path: Path):
    # Under the joblib launcher the plan checks its jobs in the workers (`check_chunk`, given
    # the loader, master config and Hydra state by pickle), each chunk with its own memo of
    # source ids here: the same entries as this process finds, and a bad job ends its chunk,
    # returned with its error (the launching process raises the first in grid order), not
    # raised.
    from hydra.core.singleton import Singleton
    from joblib.externals.loky import ProcessPoolExecutor

    from transferlab.errors import GridError
    from transferlab.sweep.plan import check_chunk, checked_entry

    where = f"paths.results={tmp_path / 'results'}"
    grid = [*JOBS[:2], JOBS[3], ["target_size=-5"], ["seed=2"]]
    jobs = [(number, [*job, where]) for number, job in enumerate(grid, 1)]
    swept = {"target_size", "seed"}
    with initialize_config_module("transferlab.conf", version_base=None):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            "config", overrides=["experiment=quickstart"], run_mode=RunMode.MULTIRUN
        )
        composer = JobComposer(loader, master)
        here = [(n, checked_entry(composer, job, n, swept)) for n, job in jobs[:3]]
        with pytest.raises(GridError) as bad:
            checked_entry(composer, jobs[3][1], 4, swept)
        context = (loader, master, Singleton.get_state())
        with ProcessPoolExecutor(2) as pool:  # fresh interpreters, as the launcher's workers
            first = pool.submit(check_chunk, "plan a", *context, jobs[:2], swept)
            rest = pool.submit(check_chunk, "plan b", *context, jobs[2:], swept)
            there = first.result() + rest.result()
    assert [n for n, _ in there] == [1, 2, 3, 4]  # job 5 is not checked
    assert there[:3] == here and {e["run_id"] for _, e in here} != {None}
    assert isinstance(there[3][1], GridError) and str(there[3][1]) == str(bad.value)
    assert "sweep job 4 (target_size=-5)" in str(bad.value)


def _sweep(
    tmp_path: Path,
    *args: str,
    logger: str = "[csv]",
    forked: bool = True,
    import_report: bool = False,
) -> subprocess.CompletedProcess:
    """`transferlab-run -m` on a tiny grid: forked from a process that imported the package
    (`helpers.entry`), or (`forked=False`) as a user types it; `import_report` types it with
    the launching process's import-time report on stderr."""
    cmd = [
        sys.executable,
        *(entry.IMPORT_REPORT_FLAGS if import_report else ()),
        "-m",
        "transferlab.cli.run",
        "-m",
        *FAST,
        f"logger={logger}",
        "train.epochs=1",
        "pretrain.epochs=1",
        "threads=1",
        f"paths.results={tmp_path / 'results'}",
        "study=plan",
        *args,
    ]
    env = {**os.environ, "TRANSFERLAB_DATA": str(tmp_path / "data"), "WANDB_MODE": "offline"}
    proc = entry.run(cmd, env=env, timeout=400, typed=not forked or import_report)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _summary(tmp_path: Path) -> dict:
    sweeps = sorted((tmp_path / "results" / "plan" / "multirun").iterdir())
    return json.loads((sweeps[-1] / "sweep_summary.json").read_text())


def _started_jobs(tmp_path: Path) -> int:
    sweeps = sorted((tmp_path / "results" / "plan" / "multirun").iterdir())
    return len([p for p in sweeps[-1].iterdir() if p.is_dir()])


@pytest.mark.slow
def test_done_and_repeated_grid_points_are_left_out_before_launch(tmp_path: Path):
    # 2 inits x 2 freeze depths: the scratch run ignores freeze_depth, so 4 points are 3 runs.
    grid = ["init=source,scratch", "freeze_depth=0,2"]
    first = _sweep(tmp_path, *grid)
    assert "planned 4 jobs" in first.stdout and "3 to run" in first.stdout
    assert "1 repeat another job's run" in first.stdout
    assert _started_jobs(tmp_path) == 3
    summary = _summary(tmp_path)
    assert (summary["jobs"], summary["completed"], summary["skipped"]) == (4, 3, 1)
    assert "[3/3]" in first.stdout  # progress counts the jobs that start
    records = tmp_path / "results" / "plan" / "records"
    assert len([p for p in records.glob("*.json")]) == 4  # 3 target runs + 1 source stage

    # Re-launch: every run id from the plan cache, nothing composed, no job started; the
    # launching process does not even load torch, timm or Lightning.
    again = _sweep(tmp_path, *grid, import_report=True)
    assert "0 to run, 4 done before" in again.stdout and "(0 composed" in again.stdout
    assert _started_jobs(tmp_path) == 0
    loaded = entry.imported_packages(again.stderr)
    assert "omegaconf" in loaded and not loaded & entry.HEAVY_PACKAGES
    summary = _summary(tmp_path)
    assert (summary["jobs"], summary["completed"], summary["skipped"]) == (4, 0, 4)

    # A torn record is not done: its job is composed, checked and run again. Under the
    # parallel launcher the workers compose and check it: the launching process loads no torch.
    torn = next(
        p
        for p in records.glob("*.json")
        if json.loads(p.read_text())["stage"] == "target"
        and json.loads(p.read_text())["init"] == "source"
    )
    torn.write_text("{")
    third = _sweep(tmp_path, *grid, "hydra/launcher=parallel", import_report=True)
    assert "1 to run, 3 done before" in third.stdout and "(1 composed" in third.stdout
    assert not entry.imported_packages(third.stderr) & entry.HEAVY_PACKAGES
    assert json.loads(torn.read_text())["status"] == "completed"

    # A new setting is a new run: the cache is keyed by the overrides, so it composes anew;
    # the basic launcher's plan checks in the launching process (the report does see torch).
    fourth = _sweep(tmp_path, *grid, "train.weight_decay=0.001", import_report=True)
    assert "3 to run" in fourth.stdout and "(4 composed" in fourth.stdout
    assert entry.HEAVY_PACKAGES <= entry.imported_packages(fourth.stderr)


@pytest.mark.slow
def test_console_of_a_sweep_has_one_line_per_run(tmp_path: Path):
    # Frozen layers (kept in eval mode on purpose: Lightning would warn), W&B logging on.
    grid = ("seed=0,1", "init=source,scratch", "freeze_depth=3")
    # as a user types it: what the console shows includes what imports print
    proc = _sweep(tmp_path, *grid, logger="[wandb,csv]", forked=False)
    console = (proc.stdout + proc.stderr).splitlines()
    progress = [line for line in console if "] job " in line]
    assert len(progress) == 4
    assert all(
        re.search(r"\[#*\.*\] \[\d/4\] job \d completed run \w+: test acc [\d.]+ in", line)
        for line in progress
    ), progress
    # Besides: the sweep folder, the plan, its cohorts and the summary; no Lightning, W&B or
    # warning lines.
    assert len(console) == len(progress) + 4, "\n".join(console)
    # Lightning's own lines are in each run's log file.
    logs = list((tmp_path / "results" / "plan" / "runs").glob("*/run.log"))
    assert len(logs) == 6 and all("GPU available" in p.read_text() for p in logs)

    # verbose=true shows Lightning's lines, each once: in a sweep's job, and in a single run as
    # a user types it (Lightning's own console handler would print them again on stderr).
    loud = _sweep(tmp_path, "seed=2", "init=scratch", "verbose=true")
    assert (loud.stdout + loud.stderr).count("GPU available") == 1, loud.stdout + loud.stderr
    cmd = [sys.executable, "-m", "transferlab.cli.run", *FAST, "init=scratch", "seed=3"]
    cmd += ["train.epochs=1", f"paths.results={tmp_path / 'results'}", "verbose=true"]
    env = {**os.environ, "TRANSFERLAB_DATA": str(tmp_path / "data"), "WANDB_MODE": "offline"}
    single = entry.run(cmd, env=env, timeout=400, typed=True)
    assert single.returncode == 0, single.stderr[-3000:]
    assert (single.stdout + single.stderr).count("GPU available") == 1, single.stderr


@pytest.mark.parametrize("size", ["-1", "0", "two"])
def test_a_batch_size_hydra_refuses_is_one_line_before_anything_runs(tmp_path: Path, size: str):
    """Hydra's basic sweeper asserts a positive `max_batch_size` (or null); ours says so in one
    line, exit status 2, nothing planned or trained (-1 used to launch nothing and exit 0)."""
    cmd = [
        sys.executable, "-m", "transferlab.cli.run", "-m", *FAST, "init=scratch", "seed=0,1",
        f"paths.results={tmp_path / 'results'}", f"hydra.sweeper.max_batch_size={size}",
    ]  # fmt: skip
    proc = entry.run(cmd, timeout=400)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "max_batch_size=" in errors[0] and size in errors[0]
    assert "positive number of jobs" in errors[0] and "Traceback" not in proc.stderr
    results = tmp_path / "results"
    assert not list(results.rglob("records/*.json")) and not list(results.rglob("plans/*"))


def test_a_checks_setting_other_than_true_or_false_is_one_line(tmp_path: Path):
    cmd = [
        sys.executable, "-m", "transferlab.cli.run", "-m", *FAST, "init=scratch", "seed=0,1",
        f"paths.results={tmp_path / 'results'}", "hydra.sweeper.checks=maybe",
    ]  # fmt: skip
    proc = entry.run(cmd, timeout=400)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "hydra.sweeper.checks='maybe'" in errors[0], errors
    assert "true" in errors[0] and "false" in errors[0] and "Traceback" not in proc.stderr
    assert not list((tmp_path / "results").rglob("records/*.json"))


def test_an_app_without_a_results_folder_gets_no_plan_cache():
    """The sweeper's plan cache lives under `paths.results`; an app without one keeps none
    (it used to write it into a folder named `None`)."""
    from omegaconf import OmegaConf

    from hydra_plugins.transferlab_sweeper.checked_sweeper import CheckedSweeper

    sweeper = CheckedSweeper(max_batch_size=None)
    sweeper.config = OmegaConf.create({"task": 1})
    assert sweeper._results_root() == ""
    sweeper.config = OmegaConf.create({"paths": {"results": "out"}})
    assert sweeper._results_root() == "out"


def test_a_slurm_signal_that_would_come_before_the_job_starts_is_refused(tmp_path: Path):
    """Slurm sends the time-limit signal up to 30 s early (docs/clusters.md): with the preset's
    120 s before a one-minute limit it would end each job as it starts, with no requeue. One
    line, exit 2, before anything is submitted (no Slurm is needed to see it)."""
    cmd = [
        sys.executable, "-m", "transferlab.cli.run", "-m", *FAST, "init=scratch", "seed=0,1",
        f"paths.results={tmp_path / 'results'}", "hydra/launcher=slurm",
        "hydra.launcher.timeout_min=1",
    ]  # fmt: skip
    proc = entry.run(cmd, timeout=400)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "signal_delay_s=120 with timeout_min=1" in errors[0], errors
    assert "below 30" in errors[0] and "Traceback" not in proc.stderr
    assert not list((tmp_path / "results").rglob(".submitit"))
