"""A cohort: target runs that differ only in `seed` and `train.lr`, trained together as one
vectorised model in one Lightning fit.

Each member is the `TransferClassifier` its lone run builds (same seeded init, method, frozen
modules, optimiser with its own learning rate and schedule, augmentation), fed the batches its
lone run draws (its own subset and its own (seed, epoch) order). A training step stacks the
members' parameters and batches and runs the model once under `torch.func.vmap` of
`functional_call`; BatchNorm running statistics are one stacked buffer per layer, of which each
member's model holds its own slice, so every member keeps its own. The summed loss gives each
member the gradient of its own loss (the members share no parameter), and each member's own
optimiser steps. Validation, epoch selection (on the member's own validation set) and the test
run per member, on the member's own model. With frozen depth groups and `feature_cache`, each
member's frozen prefix (its own source weights) runs once over its own examples, as in its lone
run, and only the rest of the model is stacked and trained (`training/frozen_features.py`).

A member whose loss turns non-finite stops training there and is recorded as diverged; the
others go on. What cannot be vectorised runs alone (`why_alone`): adaptation and label-free
objectives, methods with several optimisers (LP-FT) or a penalty, models that draw random
numbers in training (dropout, drop-path), and more than one device.

The numbers equal the lone runs' up to float rounding: a batched convolution sums in another
order (tests/test_cohort.py compares first-step losses and whole runs).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import CombinedLoader
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.func import functional_call, vmap

from transferlab.data import DatasetSplits, ImageTensors
from transferlab.data.image_ops import to_float
from transferlab.methods import Method
from transferlab.models import keep_frozen_in_eval
from transferlab.training.callbacks import (
    LeaveSigtermToSubmitit,
    submitit_trainer_options,
)
from transferlab.training.checks import SELECTION_CALLBACK
from transferlab.training.fit import (
    StageResult,
    build_module,
    fitted_result,
    frozen_prefix_once,
)
from transferlab.training.interrupt import SUBMITIT_VARIABLE
from transferlab.training.loaders import eval_loader, train_loader
from transferlab.training.module import TransferClassifier
from transferlab.training.placement import data_device, place_data
from transferlab.training.seeding import Stream, epoch_seed


class NotVectorised(Exception):
    """The runs cannot train as a cohort (the reason is the message): train them alone."""


#: What a cohort chooses each member's epoch on (the shipped selection callback's default).
SELECT_ON = "val/acc"
#: Modules that draw random numbers in training mode: a member could not draw what its lone
#: run draws inside one vectorised call.
RANDOM_MODULES = (
    "Dropout", "DropPath", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "DropBlock2d",
    "PatchDropout",
)  # fmt: skip
#: Their rate attributes (torch's `p`, timm's `drop_prob` and `prob`).
RATE_ATTRIBUTES = ("p", "drop_prob", "prob")
#: Precisions whose loss scaler is one for the whole step: K members would update it K times.
SCALED_PRECISIONS = ("16-mixed", "16", 16)


def why_alone(module: Any, devices: int = 1) -> str | None:
    """Why a run's module cannot train in a cohort (None: it can)."""
    if type(module) is not TransferClassifier:
        return f"{type(module).__name__} (adaptation or a label-free objective)"
    method = module.method
    if len(module.spans) > 1:
        return f"method {method.name} restarts its optimiser"
    if method.needs_features or type(method).penalty is not Method.penalty:
        return f"method {method.name} adds a penalty"
    if getattr(module.model, "drop_rate", 0):  # timm's functional dropout before the head
        return f"the model draws random numbers in training (drop_rate={module.model.drop_rate})"
    for name, layer in module.model.named_modules():
        rates = [getattr(layer, a, 0) for a in RATE_ATTRIBUTES if hasattr(layer, a)]
        if type(layer).__name__ in RANDOM_MODULES and any(rates):
            return f"the model draws random numbers in training ({name}: {type(layer).__name__})"
    if devices != 1:
        return f"{devices} devices"
    return None


def trained_net(member: TransferClassifier) -> nn.Module:
    """The part of a member's model a step runs: the rest after a frozen prefix computed once,
    or the whole model."""
    return member._rest if member._rest is not None else member.model


class CohortModule(L.LightningModule):
    """Trains `members` (each a lone run's module) together; see the module docstring."""

    def __init__(self, members: Sequence[TransferClassifier]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.automatic_optimization = False
        first = trained_net(members[0])
        self.base = copy.deepcopy(first)  # the structure the stacked weights run in
        self.param_names = [name for name, _ in first.named_parameters()]
        self.buffer_names = [name for name, _ in first.named_buffers()]
        self.stacked_buffers: dict[str, torch.Tensor] = {}
        self.diverged: list[str | None] = [None] * len(members)
        self.best: list[tuple[float, int, dict] | None] = [None] * len(members)
        self.steps = 0  # batches trained (every member steps once per batch)
        self.train_seconds = 0.0
        self._generators: list[torch.Generator | None] = [None] * len(members)
        self._sums: list[tuple[float, int]] = [(0.0, 0)] * len(members)
        self.samples = [0] * len(members)  # examples each member trained on

    # -- set-up ---------------------------------------------------------------------------
    def on_train_start(self) -> None:
        """Stack every member's buffers (on the device the members now live on) and make each
        member's buffers its slice of them, so that running statistics the vectorised step
        updates are the member's own."""
        for name in self.buffer_names:
            nets = [trained_net(m) for m in self.members]
            self.stacked_buffers[name] = torch.stack([net.get_buffer(name) for net in nets])
            owner, _, attr = name.rpartition(".")
            for i, net in enumerate(nets):
                net.get_submodule(owner)._buffers[attr] = self.stacked_buffers[name][i]

    def configure_optimizers(self) -> list[Any]:
        """Each member's own optimiser (and schedule), as its lone run makes them, its update
        fused where the optimiser offers that: a cohort steps k optimisers a batch, and for
        small models the update's many tiny kernels would cost as much as the vectorised
        forward (the same update up to float rounding, as the vectorised step is)."""
        for member in self.members:
            member.fused_update = True
        return [member.configure_optimizers() for member in self.members]

    def on_train_epoch_start(self) -> None:
        """Each member's phase and frozen modules for this epoch; the stacked model's modes
        follow the first member's (the members share method and depth)."""
        epoch = self.current_epoch
        for i, member in enumerate(self.members):
            member.frozen = member.method.on_epoch_start(member.model, epoch, member.frozen)
            keep_frozen_in_eval(member.frozen)
            seed = epoch_seed(member.seed, epoch, Stream.AUGMENT)
            self._generators[i] = torch.Generator(device=self.device).manual_seed(seed)
            self._sums[i] = (0.0, 0)
        reference = dict(trained_net(self.members[0]).named_modules())
        for name, layer in self.base.named_modules():
            layer.training = reference[name].training

    # -- training -------------------------------------------------------------------------
    def _inputs(self, i: int, images: torch.Tensor) -> torch.Tensor:
        """Member `i`'s batch as its lone run feeds it: augmented, then standardised (a frozen
        prefix's outputs pass as they are)."""
        member = self.members[i]
        if member._rest is not None:
            return images
        if member.augment is not None and self.trainer.training:
            images = member.augment(images, self._generators[i])
        return (to_float(images) - member.input_mean) / member.input_std

    def _stacked_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        params = {
            name: torch.stack([trained_net(m).get_parameter(name) for m in self.members])
            for name in self.param_names
        }

        def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (p, b), (x,))

        return vmap(one, randomness="error")(params, self.stacked_buffers, inputs)

    def member_losses(self, batch: Sequence[Any]) -> torch.Tensor:
        """Each member's mean cross-entropy on its own batch, from one vectorised pass."""
        inputs = torch.stack([self._inputs(i, x) for i, (x, _) in enumerate(batch)])
        labels = torch.stack([y for _, y in batch])
        logits = self._stacked_logits(inputs)
        k, n = labels.shape
        losses = nn.functional.cross_entropy(
            logits.reshape(k * n, -1).float(), labels.reshape(-1), reduction="none"
        )
        return losses.view(k, n).mean(dim=1)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> None:
        started = time.perf_counter()
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        losses = self.member_losses(batch)
        values = losses.detach().tolist()  # one wait for the device a step, for every member
        live = [i for i, v in enumerate(values) if math.isfinite(v) and self.diverged[i] is None]
        for i, value in enumerate(values):
            if not math.isfinite(value) and self.diverged[i] is None:
                self.diverged[i] = (
                    f"non-finite training loss at epoch {self.current_epoch}, "
                    f"step {self.steps + 1}"  # as a lone run counts it (its global step)
                )
        for i in live:
            optimizers[i].zero_grad()
        if live:
            self.manual_backward(losses[live].sum())
            for i in live:
                optimizers[i].step()
                total, count = self._sums[i]
                n = len(batch[i][1])
                self._sums[i] = (total + values[i] * n, count + n)
                self.samples[i] += n
        self.steps += 1
        self.train_seconds += time.perf_counter() - started
        if all(reason is not None for reason in self.diverged):
            self.trainer.should_stop = True

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        for i, scheduler in enumerate(schedulers):
            if self.diverged[i] is None:
                scheduler.step()

    # -- validation and test, per member --------------------------------------------------
    def _evaluate(self, batch: Any, i: int, stage: str) -> None:
        member = self.members[i]
        images, labels = batch
        logits = member(self._inputs(i, images)).float()
        metrics, nll = (
            (member.val_metrics, member.val_nll)
            if stage == "val"
            else (member.test_metrics, member.test_nll)
        )
        metrics.update(logits, labels)
        nll.update(logits, labels)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, dataloader_idx, "val")

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, dataloader_idx, "test")

    def on_validation_epoch_end(self) -> None:
        """Each member's validation row and training mean; its best epoch so far (the
        earliest wins a tie) with its weights; a non-finite validation loss is divergence."""
        epoch = self.current_epoch
        for i, member in enumerate(self.members):
            values = member._collect(member.val_metrics, member.val_nll, "val/")
            if self.trainer.sanity_checking or self.diverged[i] is not None:
                continue
            entry = {"epoch": epoch, **{k.removeprefix("val/"): v for k, v in values.items()}}
            member.val_curve.append(entry)
            total, count = self._sums[i]
            member.train_curve.append({"epoch": epoch, "train/loss": total / max(count, 1)})
            member.epoch_steps[epoch] = self.steps - 1  # the step Lightning logs the epoch at
            score = values["val/acc"]
            if not math.isfinite(values["val/nll"]):
                self.diverged[i] = f"non-finite validation loss at epoch {epoch}"
            elif score == score and (self.best[i] is None or score > self.best[i][0]):
                weights = {k: v.detach().clone() for k, v in member.state_dict().items()}
                self.best[i] = (score, epoch, weights)

    def on_test_epoch_end(self) -> None:
        for member in self.members:
            values = member._collect(member.test_metrics, member.test_nll, "test/")
            member.test_results = {k.removeprefix("test/"): v for k, v in values.items()}


def fit_cohort(
    stage_cfgs: Sequence[DictConfig],
    data: Sequence[tuple[DatasetSplits, ImageTensors]],
    init_paths: Sequence[str | None],
) -> list[StageResult]:
    """Fit the members (their stage configs, (splits, training subset) and source weights)
    together, choose each one's epoch on its own validation set and test it; one result per
    member, as `fit_stage` gives for a lone run. The caller has checked `why_alone`."""
    modules, infos = [], []
    for stage_cfg, (splits, _), init_path in zip(stage_cfgs, data, init_paths, strict=True):
        L.seed_everything(int(stage_cfg.seed), workers=True, verbose=False)
        module, info = build_module(stage_cfg, splits, init_path)
        modules.append(module)
        infos.append(info)
    first = stage_cfgs[0]
    budget, workers = first.budget, int(first.data_workers)
    callbacks = [LeaveSigtermToSubmitit()] if os.environ.get(SUBMITIT_VARIABLE) else []
    trainer = instantiate(
        first.trainer, logger=False, callbacks=callbacks, enable_checkpointing=False,
        default_root_dir=str(first.run.dir), **submitit_trainer_options(),
    )  # fmt: skip
    _check_trainer(trainer)
    selection = OmegaConf.select(first, f"callbacks.{SELECTION_CALLBACK}") or {}
    if (selection.get("monitor", SELECT_ON), selection.get("mode", "max")) != (SELECT_ON, "max"):
        raise NotVectorised(f"epochs chosen on {selection.get('monitor')} {selection.get('mode')}")
    if (reason := why_alone(modules[0], trainer.num_devices)) is not None:
        raise NotVectorised(reason)
    device = data_device(trainer, bool(first.data_on_device))
    data = [place_data(splits, train, device) for splits, train in data]
    data = [
        frozen_prefix_once(cfg, info["context"], module, trainer, *placed)
        for cfg, info, module, placed in zip(stage_cfgs, infos, modules, data, strict=True)
    ]
    if len({m._rest is None for m in modules}) > 1:
        raise NotVectorised("the frozen prefix is exact for some members only")
    cohort = CohortModule(modules)
    size, steps = int(budget.batch_size), int(budget.get("min_steps_per_epoch") or 1)
    trainer.fit(
        cohort,
        train_dataloaders=CombinedLoader(
            [
                train_loader(train, size, int(cfg.seed), steps, workers)
                for cfg, (_, train) in zip(stage_cfgs, data, strict=True)
            ],
            mode="min_size",
        ),
        val_dataloaders=[eval_loader(splits.val, size, workers) for splits, _ in data],
    )
    for module, best in zip(modules, cohort.best, strict=True):
        if best is not None:
            module.load_state_dict(best[2])
    trainer.test(
        cohort, dataloaders=[eval_loader(s.test, size, workers) for s, _ in data], verbose=False
    )
    return [
        _member_result(cohort, i, infos[i], data[i], trainer.is_global_zero)
        for i in range(len(modules))
    ]


def _check_trainer(trainer: L.Trainer) -> None:
    """What a cohort's one trainer cannot do for K members: one loss scale for all (16-bit
    mixed precision), step limits (manual optimisation counts K optimiser steps a batch)."""
    if trainer.precision in SCALED_PRECISIONS:
        raise NotVectorised(f"precision {trainer.precision} (one loss scale for every member)")
    if trainer.max_steps != -1 or trainer.min_steps is not None:
        raise NotVectorised("trainer.max_steps / min_steps (counted per optimiser step)")


def _member_result(
    cohort: CohortModule, i: int, info: dict, data: tuple, is_global_zero: bool
) -> StageResult:
    """Member `i`'s result, as `fit_stage` reports a lone run's."""
    module, (splits, train) = cohort.members[i], data
    seconds = cohort.train_seconds
    result = fitted_result(
        module, info, splits, train,
        samples_per_s=cohort.samples[i] / seconds if seconds > 0 else None,
        is_global_zero=is_global_zero,
    )  # fmt: skip
    result.model = module.model
    result.train_curve = [
        {**row, "step": module.epoch_steps[row["epoch"]]} for row in module.train_curve
    ]
    if cohort.diverged[i] is not None:
        result.status, result.error = "diverged", cohort.diverged[i]
        return result
    best = cohort.best[i]
    result.best_epoch = best[1] if best is not None else None
    chosen = [row for row in result.val_curve if row["epoch"] == result.best_epoch]
    if chosen:
        result.val = {k: v for k, v in chosen[0].items() if k != "epoch"}
    result.test = dict(module.test_results)
    return result
