"""Train one stage with a Lightning Trainer, in named steps: build the model, build the trainer
from config, fit, select the epoch on validation and test it.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from transferlab import methods
from transferlab.adaptation import is_adaptation
from transferlab.adaptation.data import AdaptationData
from transferlab.data import DatasetSplits, ImageTensors
from transferlab.methods import Context, Method
from transferlab.models import create_model, trainable_parameters
from transferlab.models.inputs import input_stats
from transferlab.objectives import Objective, is_supervised
from transferlab.training.adapt import AdaptationModule, adaptation_loader, adaptation_summary
from transferlab.training.callbacks import (
    BestWeights,
    LeaveSigtermToSubmitit,
    ResumeCheckpoint,
    TrainTimer,
    submitit_trainer_options,
)
from transferlab.training.checks import RESUME_CALLBACK, SELECTION_CALLBACK
from transferlab.training.frozen_features import frozen_prefix_data
from transferlab.training.interrupt import SUBMITIT_VARIABLE
from transferlab.training.loaders import eval_loader, train_loader
from transferlab.training.module import TransferClassifier
from transferlab.training.placement import data_device, place_data, wants_channels_last
from transferlab.training.pretext import SELECT_MODE, SELECT_ON, PretextModule
from transferlab.training.spans import build_spans

#: Where W&B writes a run's offline files, under its run folder (`logger/wandb.yaml`: save_dir).
WANDB_FOLDER = "wandb"

log = logging.getLogger(__name__)
#: Resuming, or starting afresh from a damaged checkpoint, is shown on the console too.
resume_log = logging.getLogger("transferlab.resume")


@dataclass
class StageResult:
    """What one stage produced; `status` is completed or diverged (failures raise)."""

    status: str
    num_depth_groups: int
    trainable_parameters: int
    train_examples: int
    val_examples: int
    num_classes: int
    head_reset: bool | None
    input_stats: tuple = ()
    val_curve: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    val: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    train_samples_per_s: float | None = None
    phases: list[dict[str, Any]] = field(default_factory=list)
    is_global_zero: bool = True
    model: Any = None
    adaptation: dict[str, Any] | None = None
    train_curve: list[dict[str, Any]] = field(default_factory=list)  # a cohort member's


def build_module(
    stage_cfg: DictConfig, splits: DatasetSplits, init_path: str | None
) -> tuple[TransferClassifier, dict[str, Any]]:
    """The timm model for the stage's data, initialised and frozen per the config, wrapped in
    the LightningModule with the optimizer and scheduler presets (which carry the budget's lr;
    one pair per span of a method that restarts its optimiser, `training/spans.py`). A source
    stage with an objective without labels trains the model without a classifier and the
    objective's heads (`training/pretext.py`); an adaptation method's stage trains on source
    and target batches together (`training/adapt.py`)."""
    objective = stage_objective(stage_cfg)
    classes = () if objective is not None else tuple(splits.classes)
    model, info = create_model(
        stage_cfg.model.name,
        num_classes=len(classes),
        in_chans=splits.channels,
        image_size=splits.image_size,
        init=stage_cfg.init,
        init_path=init_path or stage_cfg.init_path,
        target_classes=classes or None,
        **stage_cfg.model.kwargs,
    )
    method, context = stage_method(stage_cfg, info)
    frozen = method.setup(model, context)
    first, *restarts = build_spans(stage_cfg, method.spans(context))
    common = dict(
        optimizer=first.optimizer,
        scheduler=first.scheduler,
        frozen=frozen,
        augment=_augmentation(stage_cfg),
        seed=int(stage_cfg.seed),
        input_stats=input_stats(model, splits.channels, str(stage_cfg.input_norm)),
        method=method,
        restarts=restarts,
    )
    if is_adaptation(method):
        shape = {"channels": splits.channels, "size": splits.image_size}
        module = AdaptationModule(model, num_classes=len(classes), **shape, **common)
    elif objective is None:
        module = TransferClassifier(model, num_classes=len(classes), **common)
    else:
        module = PretextModule(model, objective, splits.channels, splits.image_size, **common)
    info.update(method=method, context=context, objective=objective)
    return module, info


def stage_objective(stage_cfg: DictConfig) -> Objective | None:
    """A source stage's objective when it does not read labels (None: classification)."""
    node = OmegaConf.select(stage_cfg, "budget.objective") if stage_cfg.stage == "source" else None
    return None if is_supervised(node) else instantiate(node)


def stage_method(stage_cfg: DictConfig, info: dict[str, Any]) -> tuple[Method, Context]:
    """The stage's fine-tuning method (the `method` preset; plain fine-tuning with the stage's
    freeze depth for a source stage or a scratch run, which have none) and what it knows."""
    node = stage_cfg.get("method")
    method = instantiate(node) if node else methods.DEFAULT()
    context = Context(
        freeze_depth=int(stage_cfg.freeze_depth),
        epochs=int(stage_cfg.budget.epochs),
        head_reset=info.get("head_reset"),
    )
    return method, context


def _augmentation(stage_cfg: DictConfig) -> Any:
    """The `augment` preset of a target stage (source stages are not augmented)."""
    if stage_cfg.stage != "target" or not stage_cfg.get("augment"):
        return None
    return instantiate(stage_cfg.augment)


def build_callbacks(stage_cfg: DictConfig) -> dict[str, Callback]:
    """Every callback of the `callbacks` group, by its key (the resume checkpoint only when
    resume=true), and, in a submitit job, the one that leaves SIGTERM to submitit."""
    callbacks = {
        name: instantiate(node)
        for name, node in (stage_cfg.get("callbacks") or {}).items()
        if node is not None and (name != RESUME_CALLBACK or stage_cfg.resume)
    }
    if os.environ.get(SUBMITIT_VARIABLE):
        callbacks["leave_sigterm_to_submitit"] = LeaveSigtermToSubmitit()
    return callbacks


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


def build_trainer(
    stage_cfg: DictConfig, callbacks: dict[str, Callback], run_dir: Path
) -> L.Trainer:
    """The Trainer preset, with the loggers and callbacks from their groups; the resolved stage
    config is logged as the run's hyper-parameters. Lightning's default ModelCheckpoint is off
    (the selection callback keeps the chosen weights in memory and the resume callback writes
    its own file): left on, it would write every run's weights each epoch and keep them."""
    loggers = build_loggers(stage_cfg)
    resolved = OmegaConf.to_container(stage_cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(resolved)
    return instantiate(
        stage_cfg.trainer,
        logger=loggers or False,
        callbacks=list(callbacks.values()),
        default_root_dir=str(run_dir),
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks.values()),
        **submitit_trainer_options(),
    )


def resumable_checkpoint(path: Path) -> str | None:
    """`path` if it holds a readable checkpoint to resume from; a torn one is removed.

    Read with `weights_only=True` (tensors and plain containers only), as every checkpoint
    under a results folder is: such folders are shared, copied and downloaded, and a pickled
    object in a planted file would otherwise run code. A file that needs more is refused.
    """
    if not path.exists():
        return None
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file means: start afresh
        resume_log.warning("checkpoint %s is unreadable (%s); starting the run afresh", path, exc)
        path.unlink(missing_ok=True)
        return None
    resume_log.info("resuming from %s", path)
    return str(path)


def drop_earlier_attempts(run_dir: Path, rid: str) -> None:
    """Remove the offline W&B folders of this run's earlier attempts: a re-launched run is one
    W&B run (its id is the run id), and two offline folders with one id collide on sync. A
    resumed attempt logs the restored history again (`TransferClassifier.on_train_start`)."""
    for folder in (run_dir / WANDB_FOLDER).glob(f"offline-run-*-{rid}"):
        shutil.rmtree(folder, ignore_errors=True)


def fit(
    trainer: L.Trainer,
    module: TransferClassifier,
    stage_cfg: DictConfig,
    splits: DatasetSplits,
    train_split: ImageTensors,
    resume_from: str | None,
) -> None:
    """Fit on the training subset (an adaptation stage's parts together), validating every
    epoch on `splits.val`."""
    budget, workers = stage_cfg.budget, int(stage_cfg.data_workers)
    make_loader = adaptation_loader if isinstance(train_split, AdaptationData) else train_loader
    trainer.fit(
        module,
        train_dataloaders=make_loader(
            train_split,
            int(budget.batch_size),
            int(stage_cfg.seed),
            int(budget.get("min_steps_per_epoch") or 1),
            workers,
        ),
        val_dataloaders=eval_loader(splits.val, int(budget.batch_size), workers),
        ckpt_path=resume_from,
        weights_only=True,
    )


def select_and_test(
    trainer: L.Trainer,
    module: TransferClassifier,
    selection: Callback,
    splits: DatasetSplits,
    result: StageResult,
    batch_size: int,
    workers: int = 0,
) -> None:
    """Test the weights of the epoch chosen on validation accuracy (never on test), which the
    selection callback kept in memory."""
    assert isinstance(selection, BestWeights)
    if selection.weights is not None:
        module.load_state_dict(selection.weights)
    loader = eval_loader(splits.test, batch_size, workers)
    trainer.test(module, dataloaders=loader, verbose=False)
    result.best_epoch = selection.best_epoch
    chosen = [row for row in result.val_curve if row["epoch"] == selection.best_epoch]
    if chosen:
        result.val = {k: v for k, v in chosen[0].items() if k != "epoch"}
    result.test = dict(module.test_results)
    result.model = module.model


def frozen_prefix_once(
    stage_cfg: DictConfig,
    context: Context,
    module: TransferClassifier,
    trainer: L.Trainer,
    splits: DatasetSplits,
    train_split: ImageTensors,
) -> tuple[DatasetSplits, Any]:
    """With `feature_cache`, frozen depth groups, no augmentation and examples in memory (a
    streamed dataset's outputs could outgrow it too), the splits as the frozen prefix's outputs
    (computed once) and the module set to train the rest on them."""
    frozen = module.method.frozen_prefix_depth(context) > 0
    in_memory = all(isinstance(s, ImageTensors) for s in (train_split, splits.val, splits.test))
    if not (stage_cfg.get("feature_cache") and frozen and in_memory) or module.augment is not None:
        return splits, train_split
    cached = frozen_prefix_data(
        module, splits, train_split, int(stage_cfg.budget.batch_size), trainer.strategy.root_device
    )
    if cached is None:
        return splits, train_split
    rest, splits, train_split = cached
    module.train_on_features(rest)
    return splits, train_split


def fit_stage(
    stage_cfg: DictConfig,
    splits: DatasetSplits,
    train_split: ImageTensors,
    run_dir: Path,
    *,
    init_path: str | None = None,
) -> StageResult:
    """Fit a model on `train_split`, choose the epoch on `splits.val`, test on `splits.test`."""
    L.seed_everything(int(stage_cfg.seed), workers=True, verbose=False)
    module, info = build_module(stage_cfg, splits, init_path)
    callbacks = build_callbacks(stage_cfg)
    if info["objective"] is not None:  # no labels, no accuracy: the objective's own loss
        selection = callbacks[SELECTION_CALLBACK]
        selection.monitor, selection.mode = SELECT_ON, SELECT_MODE
    resume_from = None
    if RESUME_CALLBACK in callbacks and not stage_cfg.force:
        resume = callbacks[RESUME_CALLBACK]
        assert isinstance(resume, ResumeCheckpoint)
        resume_from = resumable_checkpoint(Path(resume.path))
    drop_earlier_attempts(run_dir, str(stage_cfg.run.id))
    trainer = build_trainer(stage_cfg, callbacks, run_dir)
    device = data_device(trainer, bool(stage_cfg.data_on_device))
    splits, train_split = place_data(splits, train_split, device)
    if wants_channels_last(stage_cfg.channels_last, module.model, trainer.strategy.root_device):
        module.use_channels_last()
    splits, train_split = frozen_prefix_once(
        stage_cfg, info["context"], module, trainer, splits, train_split
    )
    fit(trainer, module, stage_cfg, splits, train_split, resume_from)
    untrained = _validate_untrained(trainer, module, stage_cfg, splits)
    timer = next((c for c in callbacks.values() if isinstance(c, TrainTimer)), None)
    result = fitted_result(
        module, info, splits, train_split,
        samples_per_s=timer.samples_per_s if timer is not None else None,
        is_global_zero=trainer.is_global_zero,
    )  # fmt: skip
    if module.diverged_reason is not None:
        result.status, result.error = "diverged", module.diverged_reason
    else:
        select_and_test(
            trainer,
            module,
            callbacks[SELECTION_CALLBACK],
            splits,
            result,
            int(stage_cfg.budget.batch_size),
            int(stage_cfg.data_workers),
        )
        if untrained is not None:  # validated, not trained: no epoch was chosen
            result.val, result.best_epoch = untrained, None
        if isinstance(train_split, AdaptationData):
            seed = int(stage_cfg.seed)
            result.adaptation = adaptation_summary(module, train_split, splits.test, seed)
    _drop_checkpoints(stage_cfg, trainer, run_dir)
    return result


def fitted_result(
    module: TransferClassifier,
    info: dict[str, Any],
    splits: DatasetSplits,
    train_split: Any,
    *,
    samples_per_s: float | None,
    is_global_zero: bool,
) -> StageResult:
    """What a fitted module reports before its epoch is chosen and tested (a lone run's, or a
    cohort member's)."""
    return StageResult(
        status="completed",
        num_depth_groups=int(info["num_depth_groups"]),
        trainable_parameters=trainable_parameters(module.model),
        train_examples=len(train_split),
        val_examples=len(splits.val),
        num_classes=len(splits.classes),
        head_reset=info.get("head_reset"),
        input_stats=module.input_stats,
        val_curve=list(module.val_curve),
        train_samples_per_s=samples_per_s,
        phases=info["method"].phases(info["context"]),
        is_global_zero=is_global_zero,
    )


def _validate_untrained(
    trainer: L.Trainer, module: TransferClassifier, stage_cfg: DictConfig, splits: DatasetSplits
) -> dict[str, float] | None:
    """A stage of no epochs (`pretrain.epochs=0`: the initialised model as a source) has its
    initial weights validated once, so its record carries a validation accuracy as every
    completed record does; no epoch is chosen (`best_epoch` None, an empty `val_curve`)."""
    if int(stage_cfg.budget.epochs) > 0:
        return None
    batch_size, workers = int(stage_cfg.budget.batch_size), int(stage_cfg.data_workers)
    trainer.validate(
        module, dataloaders=eval_loader(splits.val, batch_size, workers), verbose=False
    )
    entry = module.val_curve.pop()
    module.train_curve.pop()
    return {k: v for k, v in entry.items() if k != "epoch"}


def _drop_checkpoints(stage_cfg: DictConfig, trainer: L.Trainer, run_dir: Path) -> None:
    """A finished run needs no Lightning checkpoints (a study would fill the disk with them)."""
    if not stage_cfg.keep_checkpoints and trainer.is_global_zero:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
