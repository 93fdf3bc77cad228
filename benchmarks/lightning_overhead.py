"""Lightning's per-run overhead on a target stage, against a plain PyTorch loop.

Three paths train the default run's target stage (digits, test_resnet, init=scratch) with the
same data, seed, batch order, AdamW + cosine schedule and epochs, validate every epoch with
the project's metrics and test the epoch best on validation (same accuracies = same work):
  lightning  the real path, ``fit_stage``, trainer composed from conf/ (lean cpu preset, no
             progress bar, logger csv or none; the selected epoch's weights kept in memory,
             resume checkpoints at most every 30 s, the config defaults)
  barebones  the same module under ``Trainer(barebones=True)`` (best weights kept in memory)
  plain      a hand-written loop over the same model, inputs, loaders, optimizer and metrics
             (benchmarks/plain_loop.py)

Usage: python benchmarks/lightning_overhead.py [--image-size 32] [--target-size 100|all]
       [--epochs 10] [--batch-size 32] [--repeats 3] [--logger csv|none] [--no-resume] [--save]
Prints per path the median and best wall seconds of a whole run (model built to test done;
one warm-up round first, then rounds interleaved), that median over optimizer steps, its
ratio and difference to the plain loop, and the best-epoch val and test accuracy.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from plain_loop import build, fit_plain, snapshot  # noqa: E402 - benchmarks/ is on sys.path
from saved import add_save_flag, save  # noqa: E402

import transferlab.cli.run  # noqa: F401 - registers the tl.uid resolver
from transferlab.data import DatasetSplits, ImageTensors, build_splits, stratified_subset
from transferlab.models import freeze_groups
from transferlab.models.inputs import input_stats
from transferlab.store import run_id
from transferlab.store import stage_config as stage_view
from transferlab.training.fit import fit_stage
from transferlab.training.loaders import eval_loader, train_loader
from transferlab.training.module import TransferClassifier
from transferlab.training.run import _with_run_info

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
Outcome = tuple[float, float]  # best-epoch val accuracy, test accuracy


def stage_config(args: argparse.Namespace) -> DictConfig:
    """The target stage config of the default run, composed through Hydra."""
    size = "null" if args.target_size == "all" else args.target_size
    overrides = (
        f"init=scratch image_size={args.image_size} target_size={size} train.epochs={args.epochs}"
        f" train.batch_size={args.batch_size} trainer.enable_progress_bar=false"
        f" logger=[{'csv' if args.logger == 'csv' else ''}]"
        f"{' resume=false' if args.no_resume else ''}"
    ).split()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    stage = stage_view(cfg, "target")
    return _with_run_info(stage, run_id(stage), Path("unset"))  # run.dir: set per run


def make_model(stage: DictConfig, splits: DatasetSplits) -> torch.nn.Module:
    """A fresh model, seeded and initialised as ``fit_stage`` does it."""
    return build(stage, splits, None)[0]


def make_train_loader(stage: DictConfig, train: ImageTensors) -> Any:
    """The training batches ``fit_stage`` draws (small sets cycled to the minimum steps)."""
    min_steps = int(stage.budget.get("min_steps_per_epoch") or 1)
    return train_loader(train, int(stage.budget.batch_size), int(stage.seed), min_steps)


def run_lightning(stage: DictConfig, splits: DatasetSplits, train: ImageTensors) -> Outcome:
    """The project's real path: ``fit_stage`` in a fresh run folder, as ``run_stage`` makes."""
    with tempfile.TemporaryDirectory() as tmp:
        stage.run.dir = tmp
        result = fit_stage(stage, splits, train, Path(tmp))
    return result.val["acc"], result.test["acc"]


class KeepBest(L.Callback):
    """The weights of the first epoch with the best val accuracy, in memory."""

    def __init__(self) -> None:
        self.acc, self.state = -1.0, None

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if module.val_curve and module.val_curve[-1]["acc"] > self.acc:
            self.acc = module.val_curve[-1]["acc"]
            self.state = snapshot(module.model)


def run_barebones(stage: DictConfig, splits: DatasetSplits, train: ImageTensors) -> Outcome:
    """The project's module, built as ``fit_stage`` builds it, under a barebones Trainer."""
    model, best, bs = make_model(stage, splits), KeepBest(), int(stage.budget.batch_size)
    module = TransferClassifier(
        model,
        num_classes=len(splits.classes),
        optimizer=instantiate(stage.optimizer),
        scheduler=instantiate(stage.scheduler),
        frozen=freeze_groups(model, int(stage.freeze_depth)),
        input_stats=input_stats(model, splits.channels, str(stage.input_norm)),
    )
    trainer = L.Trainer(
        barebones=True,
        accelerator="cpu",
        devices=1,
        max_epochs=int(stage.budget.epochs),
        deterministic=bool(stage.trainer.deterministic),
        callbacks=[best],
    )
    trainer.fit(module, make_train_loader(stage, train), eval_loader(splits.val, bs))
    module.model.load_state_dict(best.state)
    trainer.test(module, eval_loader(splits.test, bs), verbose=False)
    return best.acc, module.test_results["acc"]


def run_plain(stage: DictConfig, splits: DatasetSplits, train: ImageTensors) -> Outcome:
    """The same work by hand (benchmarks/plain_loop.py): train, validate, keep the best, test."""
    _, val, test = fit_plain(stage, splits, train)
    return val, test


PATHS = {"lightning": run_lightning, "barebones": run_barebones, "plain": run_plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--target-size", default="100", help="an integer or 'all'")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--logger", choices=["csv", "none"], default="csv")
    parser.add_argument("--no-resume", action="store_true", help="no per-epoch last.ckpt")
    add_save_flag(parser)
    args = parser.parse_args()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*(num_workers|barebones|self\.log|LeafSpec).*")

    stage = stage_config(args)
    splits = build_splits(stage.target, image_size=args.image_size, channels=3, split_seed=0)
    subset = stratified_subset(splits.train.labels, stage.target_size, int(stage.seed))
    train = splits.train.subset(subset)
    steps = args.epochs * len(make_train_loader(stage, train))
    times: dict[str, list[float]] = {name: [] for name in PATHS}
    outcome: dict[str, Outcome] = {}
    for repeat in range(args.repeats + 1):  # round 0 warms up (lazy inits); interleaved rounds
        for name, fn in PATHS.items():
            start = time.perf_counter()
            outcome[name] = fn(stage, splits, train)
            if repeat:
                times[name].append(time.perf_counter() - start)

    print(
        f"digits {args.image_size}px, {len(train)} train / {len(splits.val)} val / "
        f"{len(splits.test)} test, {args.epochs} epochs x batch {args.batch_size} = {steps} "
        f"steps; logger {args.logger}, resume {stage.get('resume')}; "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )
    plain = statistics.median(times["plain"])
    print(
        f"{'path':<11}{'median s':>9}{'best s':>8}{'s/step':>8}{'vs plain':>10}{'overhead s':>12}"
        f"{'val acc':>9}{'test acc':>10}"
    )
    for name in PATHS:
        wall, (val, test) = statistics.median(times[name]), outcome[name]
        print(
            f"{name:<11}{wall:>9.3f}{min(times[name]):>8.3f}{wall / steps:>8.4f}"
            f"{wall / plain:>9.2f}x{wall - plain:>+12.3f}{val:>9.3f}{test:>10.3f}"
        )
    if args.save:
        figures = {f"{name}_s": round(statistics.median(times[name]), 3) for name in PATHS}
        same = len({outcome[name] for name in PATHS}) == 1
        save(
            args.save,
            "lightning_overhead",
            {**figures, "steps": steps, "image_size": args.image_size, "same_accuracies": same},
        )


if __name__ == "__main__":
    main()
