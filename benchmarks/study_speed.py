"""One study grid four ways, side by side in one invocation: wall times and ratios.

  naive        transferlab configured as a plain Lightning + Hydra template runs: every run
               trains its own source (`cache=false`), nothing computed once
               (`feature_cache=false`), Lightning's defaults (progress bar, model summary,
               sanity check, a best.ckpt file and a resume checkpoint every epoch), W&B and
               all output on the console. It runs on the same launcher with the same cores
               as transferlab (the quickstart's 2 joblib workers of 1 thread), so the ratio
               measures what the harness saves per run, not parallelism. It still skips grid
               points that repeat a run (a conservative naive). One run per job: a template
               has no cohorts.
  transferlab  the same grid as built (`experiment=quickstart` settings, 2 joblib workers):
               the runs of a cell that differ only in seed and learning rate train as one
               cohort (the default).
  lone         the same, one run per job (`cohort=false`): what cohorts buy.
  floor        the compute floor: the same optimiser steps and evaluations of every distinct
               run in a plain PyTorch loop (benchmarks/plain_loop.py), each source trained
               once, 2 worker processes of 1 thread like transferlab; no framework, no logs.

The grid is the quickstart's shape scaled down (documented in GRID): 2 sources x 2 target sizes
x 2 freeze depths x 2 learning rates x 2 seeds x {source, scratch} = 64 grid points, 40
distinct target runs and 4 source stages. A last line times a re-launch of the finished study.

Usage: python benchmarks/study_speed.py [--seeds 2] [--skip-naive] [--save]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from saved import add_save_flag, save  # noqa: E402 - benchmarks/ is on sys.path

#: The quickstart's grid, scaled down (same settings per run: experiment=quickstart).
GRID = {
    "data@source": "digits_rot45,shapes",
    "target_size": "20,200",
    "freeze_depth": "0,5",
    "train.lr": "0.003,0.01",
    "init": "source,scratch",
}
NAIVE = [
    "cohort=false",
    "cache=false",
    "feature_cache=false",
    "verbose=true",
    "trainer.enable_model_summary=true",
    "trainer.num_sanity_val_steps=2",
    "callbacks.resume_checkpoint.min_interval_s=0",
    "+callbacks.best_file={_target_: lightning.pytorch.callbacks.ModelCheckpoint,"
    " dirpath: '${run.dir}/checkpoints', filename: best, monitor: val/acc, mode: max}",
]
WORKERS = 2


def _grid(seeds: int) -> list[str]:
    return [f"{k}={v}" for k, v in GRID.items()] + [f"seed={','.join(map(str, range(seeds)))}"]


def run_cli(results: Path, seeds: int, extra: list[str]) -> float:
    """Wall seconds of `transferlab-run -m experiment=quickstart <grid> <extra>`."""
    cmd = [
        sys.executable,
        "-m",
        "transferlab.cli.run",
        "-m",
        "experiment=quickstart",
        f"paths.results={results}",
        *_grid(seeds),
        *extra,
    ]
    started = time.perf_counter()
    log = results.parent / f"{results.name}.log"
    with open(log, "w") as out:
        status = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
    if status != 0:
        sys.exit(f"{' '.join(cmd)}\nexited {status}:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - started


def _runs(seeds: int) -> list[tuple[str | None, object]]:
    """(source run id, run config) of every distinct target run of the grid."""
    import itertools

    from hydra import compose, initialize_config_module

    import transferlab.cli.run  # noqa: F401 - resolvers
    from transferlab.store import run_id, stage_configs

    keys = [*GRID, "seed"]
    values = [v.split(",") for v in GRID.values()] + [[str(s) for s in range(seeds)]]
    runs: dict[str, tuple[str | None, object]] = {}
    with initialize_config_module("transferlab.conf", version_base=None):
        for point in itertools.product(*values):
            overrides = ["experiment=quickstart", *(f"{k}={v}" for k, v in zip(keys, point))]
            cfg = compose("config", overrides=overrides)
            source, target = stage_configs(cfg)
            runs.setdefault(run_id(target), (run_id(source) if source else None, cfg))
    return list(runs.values())


def _floor_worker(group: list[tuple[str | None, object]]) -> int:
    """Train this worker's sources once each, then its target runs, in plain loops."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from plain_loop import fit_plain

    from transferlab.models import save_checkpoint
    from transferlab.store import stage_configs
    from transferlab.training.run import _training_data

    torch.set_num_threads(1)
    sources: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source_id, cfg in group:
            source_cfg, target_cfg = stage_configs(cfg)
            if source_id is not None and source_id not in sources:
                splits, train = _training_data(source_cfg)
                model, _, _ = fit_plain(source_cfg, splits, train)
                sources[source_id] = f"{tmp}/{source_id}.pt"
                save_checkpoint(
                    model,
                    sources[source_id],
                    model_name=source_cfg.model.name,
                    model_kwargs={},
                    classes=tuple(splits.classes),
                    image_size=splits.image_size,
                    in_chans=splits.channels,
                )
            splits, train = _training_data(target_cfg)
            fit_plain(target_cfg, splits, train, sources.get(source_id))
    return len(group)


def run_floor(seeds: int) -> tuple[float, int]:
    """Wall seconds of the floor, and the number of distinct target runs."""
    runs = _runs(seeds)
    groups: list[list] = [[] for _ in range(WORKERS)]
    by_source: dict[str | None, list] = {}
    for run in runs:
        by_source.setdefault(run[0], []).append(run)
    for i, (_, members) in enumerate(sorted(by_source.items(), key=lambda x: str(x[0]))):
        groups[i % WORKERS].extend(members)
    started = time.perf_counter()
    with ProcessPoolExecutor(WORKERS) as pool:
        done = sum(pool.map(_floor_worker, groups))
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--skip-naive", action="store_true")
    add_save_flag(parser)
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        times = {}
        times["floor"], n_runs = run_floor(args.seeds)
        times["transferlab"] = run_cli(root / "built", args.seeds, [])
        relaunch = run_cli(root / "built", args.seeds, [])
        times["lone"] = run_cli(root / "lone", args.seeds, ["cohort=false"])
        if not args.skip_naive:
            times["naive"] = run_cli(root / "naive", args.seeds, NAIVE)
    points = 2 ** len(GRID) * args.seeds
    print(f"grid: {points} points, {n_runs} distinct target runs (quickstart settings, 16 px)")
    print(f"{'way':<12} {'wall s':>8} {'vs floor':>9}")
    for way in ("naive", "lone", "transferlab", "floor"):
        if way in times:
            print(f"{way:<12} {times[way]:>8.1f} {times[way] / times['floor']:>8.2f}x")
    if "naive" in times:
        print(
            f"transferlab is {times['naive'] / times['transferlab']:.1f}x faster than naive "
            "(target >= 10x)"
        )
    print(f"transferlab / floor = {times['transferlab'] / times['floor']:.2f} (target <= 1)")
    print(f"cohorts: {times['lone'] / times['transferlab']:.2f}x faster than one run per job")
    print(f"re-launch of the finished study: {relaunch:.1f} s (nothing trained)")
    if args.save:
        figures = {f"{way}_s": round(t, 1) for way, t in times.items()}
        save(
            args.save,
            "study_speed",
            {
                **figures,
                "grid_points": points,
                "target_runs": n_runs,
                "relaunch_s": round(relaunch, 1),
            },
        )


if __name__ == "__main__":
    main()
