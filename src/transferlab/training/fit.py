"""Train one stage with a Lightning Trainer: fit, pick the epoch on validation, test it."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from transferlab.data import DatasetSplits, ImageTensors
from transferlab.models import create_model, freeze_stages, num_stages
from transferlab.training.loaders import eval_loader, train_loader
from transferlab.training.module import TransferClassifier

SELECTION_METRIC = "val/acc"
LAST_CHECKPOINT = "last.ckpt"

log = logging.getLogger(__name__)


def resumable_checkpoint(path: Path) -> str | None:
    """`path` if it holds a readable checkpoint to resume from; a torn one is removed."""
    if not path.exists():
        return None
    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file means: start afresh
        log.warning("checkpoint %s is unreadable (%s); starting the run afresh", path, exc)
        path.unlink(missing_ok=True)
        return None
    log.info("resuming from %s", path)
    return str(path)


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
        self.seconds += time.perf_counter() - self._start
        self.samples += len(batch[-1])


@dataclass
class StageResult:
    """What one stage produced; `status` is completed or diverged (failures raise)."""

    status: str
    num_stages: int
    train_examples: int
    num_classes: int
    best_epoch: int | None = None
    val: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    val_curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    train_samples_per_s: float | None = None
    head_reset: bool | None = None
    is_global_zero: bool = True
    model: Any = None


def build_loggers(stage_cfg: DictConfig) -> list[Any]:
    """Instantiate every logger named under `logger` (wandb, csv, tensorboard, ...)."""
    loggers = []
    for name, logger_cfg in (stage_cfg.get("logger") or {}).items():
        if logger_cfg is None:
            continue
        if "_target_" not in logger_cfg:
            raise ValueError(f"logger {name!r} has no _target_")
        loggers.append(instantiate(logger_cfg))
    return loggers


def _first_best(curve: list[dict[str, float]]) -> int | None:
    """Epoch of the highest validation accuracy; the earliest wins ties (as ModelCheckpoint)."""
    scored = [(row["acc"], -i) for i, row in enumerate(curve) if row.get("acc") is not None]
    return -max(scored)[1] if scored else None


def fit_stage(
    stage_cfg: DictConfig,
    splits: DatasetSplits,
    train_split: ImageTensors,
    run_dir: Path,
    *,
    init_path: str | None = None,
    source_classes: tuple[str, ...] | None = None,
) -> StageResult:
    """Fit a model on `train_split`, choose the epoch on `splits.val`, test on `splits.test`."""
    budget = stage_cfg.train
    L.seed_everything(int(stage_cfg.seed), workers=True, verbose=False)
    model, info = create_model(
        stage_cfg.model.name,
        num_classes=len(splits.classes),
        in_chans=splits.channels,
        image_size=splits.image_size,
        init=stage_cfg.init,
        init_path=init_path or stage_cfg.init_path,
        source_classes=source_classes,
        target_classes=tuple(splits.classes),
        **stage_cfg.model.kwargs,
    )
    frozen = freeze_stages(model, int(stage_cfg.freeze_depth))
    module = TransferClassifier(
        model,
        num_classes=len(splits.classes),
        optimizer=instantiate(stage_cfg.optimizer),
        scheduler=instantiate(stage_cfg.scheduler) if stage_cfg.get("scheduler") else None,
        lr=float(budget.lr),
        weight_decay=float(budget.weight_decay),
        frozen=frozen,
    )
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=SELECTION_METRIC,
        mode="max",
        save_top_k=1,
        enable_version_counter=False,
    )
    callbacks: list[Callback] = [checkpoint]
    if stage_cfg.resume:
        # Every epoch: Lightning's `save_last=True` writes last.ckpt only in an epoch whose
        # val/acc improved, so a killed run would go back to its best epoch, not its last.
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                filename=Path(LAST_CHECKPOINT).stem,
                save_top_k=1,
                enable_version_counter=False,
            )
        )
    resume_from = None
    if stage_cfg.resume and not stage_cfg.force:
        resume_from = resumable_checkpoint(run_dir / "checkpoints" / LAST_CHECKPOINT)
    timer = TrainTimer()
    loggers = build_loggers(stage_cfg)
    trainer: L.Trainer = instantiate(
        stage_cfg.trainer,
        logger=loggers or False,
        callbacks=[*callbacks, timer],
        default_root_dir=str(run_dir),
    )
    resolved = OmegaConf.to_container(stage_cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(resolved)
    trainer.fit(
        module,
        train_dataloaders=train_loader(
            train_split,
            int(budget.batch_size),
            int(stage_cfg.seed),
            int(budget.get("min_steps_per_epoch") or 1),
        ),
        val_dataloaders=eval_loader(splits.val, int(budget.batch_size)),
        ckpt_path=resume_from,
    )
    result = StageResult(
        status="completed",
        num_stages=num_stages(model),
        train_examples=len(train_split),
        num_classes=len(splits.classes),
        val_curve=list(module.val_curve),
        head_reset=info.get("head_reset"),
        is_global_zero=trainer.is_global_zero,
    )
    if timer.seconds > 0:
        result.train_samples_per_s = timer.samples / timer.seconds
    if module.diverged_reason is not None:
        result.status = "diverged"
        result.error = module.diverged_reason
        _drop_checkpoints(stage_cfg, trainer, run_dir)
        return result
    trainer.test(
        module,
        dataloaders=eval_loader(splits.test, int(budget.batch_size)),
        ckpt_path=checkpoint.best_model_path or None,
        verbose=False,
    )
    result.best_epoch = _first_best(result.val_curve)
    if result.best_epoch is not None:
        result.val = {k: v for k, v in result.val_curve[result.best_epoch].items() if k != "epoch"}
    result.test = dict(module.test_results)
    result.model = module.model
    _drop_checkpoints(stage_cfg, trainer, run_dir)
    return result


def _drop_checkpoints(stage_cfg: DictConfig, trainer: L.Trainer, run_dir: Path) -> None:
    """A finished run needs no Lightning checkpoints (a study would fill the disk with them)."""
    if not stage_cfg.keep_checkpoints and trainer.is_global_zero:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
