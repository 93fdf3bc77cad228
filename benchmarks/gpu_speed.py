"""The GPU path, step by step: training samples/s of resnet18 at 32 px, and a small study's wall.

Each variant trains the same target stage through the real path (``fit_stage``: resnet18 from
scratch on the procedural `shapes` data at 32 px, 3 channels, batch 256) and differs in one
setting from the row above it:
  fp32         32-bit floats, NCHW, examples on the host (a host-to-device copy per batch)
  bf16         bf16 autocast (the `gpu` trainer preset's precision)
  nhwc         + channels_last weights and batches
  on-device    + the examples kept in GPU memory: what `trainer=gpu` does by default
  cohort       the on-device run with 8 seeds trained as one vectorised cohort
               (`training/cohort.py`, in NCHW: a cohort does not convert layouts), samples/s of
               all members together
Samples/s are the TrainTimer's (training steps only, synchronised); wall s is the whole run
(model built to test done). One warm-up round first, then the median of the repeats.

Without a GPU the variants run on the CPU (bf16 and NHWC are CPU kernels there and the data
already live on the host): the figures then say nothing about a GPU, and the script says so.

`--study` also times the study_speed grid (benchmarks/study_speed.py, 2 seeds) on the device,
with cohorts (the default) and with one run per job (`cohort=false`).

Usage: python benchmarks/gpu_speed.py [--steps 200] [--repeats 3] [--batch-size 256] [--study]
       [--save]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from saved import add_save_flag, save  # noqa: E402 - benchmarks/ is on sys.path

import transferlab.cli.run  # noqa: F401 - registers the tl.uid resolver
from transferlab.store import run_id
from transferlab.store import stage_config as stage_view
from transferlab.training.console import stage_output
from transferlab.training.fit import fit_stage
from transferlab.training.run import _training_data, _with_run_info

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
#: Each variant's settings, cumulative (each row adds to the one before).
VARIANTS = {
    "fp32": ["trainer.precision=32-true", "channels_last=false", "data_on_device=false"],
    "bf16": ["trainer.precision=bf16-mixed", "channels_last=false", "data_on_device=false"],
    "nhwc": ["trainer.precision=bf16-mixed", "channels_last=true", "data_on_device=false"],
    "on-device": ["trainer.precision=bf16-mixed", "channels_last=true", "data_on_device=true"],
}
EPOCHS = 2
#: Members of the cohort variant (seeds 0..k-1 of the on-device run).
COHORT_MEMBERS = 8


def stage_config(args: argparse.Namespace, trainer: str, extra: list[str]) -> DictConfig:
    """The target stage of the benchmark run with one variant's settings, through Hydra."""
    steps_per_epoch = max(1, args.steps // EPOCHS)
    overrides = [
        "init=scratch",
        "model=resnet18",
        "data@target=shapes",
        "image_size=32",
        "channels=3",
        "target_size=null",
        "logger=[]",
        f"trainer={trainer}",
        f"train.epochs={EPOCHS}",
        f"train.batch_size={args.batch_size}",
        f"train.min_steps_per_epoch={steps_per_epoch}",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    stage = stage_view(cfg, "target")
    return _with_run_info(stage, run_id(stage), Path("unset"))


def time_variant(stage: DictConfig) -> tuple[float, float, float]:
    """(training samples/s, wall seconds, test accuracy) of one real run."""
    splits, train = _training_data(stage)
    with tempfile.TemporaryDirectory() as tmp:
        stage.run.dir = tmp
        started = time.perf_counter()
        with stage_output(Path(tmp), verbose=False):  # Lightning's lines to the run's log
            result = fit_stage(stage, splits, train, Path(tmp))
        wall = time.perf_counter() - started
    return float(result.train_samples_per_s or 0.0), wall, result.test["acc"]


def time_cohort(args: argparse.Namespace, trainer: str) -> float:
    """Training samples/s of COHORT_MEMBERS on-device runs (seeds 0..k-1) as one cohort."""
    from transferlab.training.cohort import fit_cohort

    extra = VARIANTS["on-device"]
    stages = [stage_config(args, trainer, [*extra, f"seed={s}"]) for s in range(COHORT_MEMBERS)]
    data = [_training_data(stage) for stage in stages]
    with tempfile.TemporaryDirectory() as tmp:
        for stage in stages:
            stage.run.dir = tmp
        with stage_output(Path(tmp), verbose=False):
            results = fit_cohort(stages, data, [None] * len(stages))
    return float(sum(r.train_samples_per_s or 0.0 for r in results))


def time_study(trainer: str, *extra: str) -> float:
    """Wall seconds of the study_speed grid (2 seeds) run by transferlab on `trainer`."""
    from study_speed import run_cli  # noqa: E402 - benchmarks/ is on sys.path

    with tempfile.TemporaryDirectory() as tmp:
        return run_cli(Path(tmp) / "results", 2, [f"trainer={trainer}", *extra])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--study", action="store_true", help="also time the study_speed grid")
    add_save_flag(parser)
    args = parser.parse_args()
    figures: dict[str, float | int] = {"batch": args.batch_size, "steps": args.steps}
    gpu = torch.cuda.is_available()
    trainer = "gpu" if gpu else "cpu"
    device = torch.cuda.get_device_name(0) if gpu else "CPU (no GPU: not a GPU figure)"
    print(f"resnet18, shapes 32 px, batch {args.batch_size}, {args.steps} steps; {device}")
    stages = {name: stage_config(args, trainer, extra) for name, extra in VARIANTS.items()}
    for stage in stages.values():  # warm-up: kernels, cuDNN autotuning, data caches
        time_variant(stage)
    print(f"{'variant':<10} {'samples/s':>10} {'vs fp32':>8} {'wall s':>8} {'test acc':>9}")
    base = None
    for name, stage in stages.items():
        rounds = [time_variant(stage) for _ in range(args.repeats)]
        rate = statistics.median(r[0] for r in rounds)
        wall = statistics.median(r[1] for r in rounds)
        base = base or rate
        print(f"{name:<10} {rate:>10.0f} {rate / base:>7.2f}x {wall:>8.2f} {rounds[0][2]:>9.3f}")
        figures[f"{name}_samples_per_s"] = round(rate)
    rate = time_cohort(args, trainer)
    print(f"{'cohort':<10} {rate:>10.0f} {rate / base:>7.2f}x  ({COHORT_MEMBERS} members together)")
    figures["cohort_samples_per_s"], figures["cohort_members"] = round(rate), COHORT_MEMBERS
    if args.study:
        figures["study_s"] = round(time_study(trainer), 1)
        figures["study_lone_s"] = round(time_study(trainer, "cohort=false"), 1)
        print(
            f"study_speed grid, 2 seeds, trainer={trainer}: {figures['study_s']} s wall in "
            f"cohorts, {figures['study_lone_s']} s one run per job"
        )
    if args.save:
        save(args.save, "gpu_speed", figures)


if __name__ == "__main__":
    main()
