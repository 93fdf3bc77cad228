"""The LightningModule: a timm classifier with frozen stages, metrics and divergence detection."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from transferlab.data.image_ops import to_float
from transferlab.methods import Method
from transferlab.models import keep_frozen_in_eval
from transferlab.models.features import logits_and_features
from transferlab.models.inputs import UNIT_STATS, Stats
from transferlab.training.metrics import NegativeLogLikelihood, classification_metrics
from transferlab.training.placement import to_channels_last
from transferlab.training.seeding import Stream, epoch_seed
from transferlab.training.spans import OptimizerSpan

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
#: An augmentation: (uint8 images on the device, generator) -> images (training/augment.py).
Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


#: Metric set on the rows a resumed run logs again from its checkpoint (not trained again).
RESTORED = "restored_from_checkpoint"


#: Devices whose fused optimiser kernels a cohort uses (torch checks only at the first step).
FUSED_DEVICES = ("cpu", "cuda")


def make_optimizer(
    factory: OptimizerFactory, groups: list[dict], fused: bool
) -> torch.optim.Optimizer:
    """The preset's optimiser over `groups`; with `fused`, its update in one kernel per tensor
    where the optimiser offers that (Adam, AdamW, SGD) and every parameter is floating point
    on one of FUSED_DEVICES: about 3x faster for a small model's many tensors on a CPU, the
    same update up to float rounding. Otherwise its usual update."""
    target = getattr(factory, "func", factory)
    if (
        fused
        and "fused" in inspect.signature(target).parameters
        and all(
            p.is_floating_point() and p.device.type in FUSED_DEVICES
            for group in groups
            for p in group["params"]
        )
    ):
        return factory(groups, fused=True)
    return factory(groups)


class TransferClassifier(L.LightningModule):
    """Trains `model` on one stage; keeps `frozen` modules in eval mode (fixed BatchNorm stats).

    `optimizer` is the optimizer preset's partial: it carries the stage budget's learning rate
    and weight decay, so the code sets neither. `method` (transferlab.methods) has set up what
    trains; it also gives the optimiser's parameter groups, an extra loss and phase changes.
    `restarts`: fresh optimisers and schedules from later epochs on (`Method.spans`; the first
    span's are `optimizer` and `scheduler`).
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        frozen: list[nn.Module] | None = None,
        augment: Augmentation | None = None,
        seed: int = 0,
        input_stats: Stats = UNIT_STATS,
        method: Method | None = None,
        restarts: Sequence[OptimizerSpan] = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.method = method or Method()
        self.augment = augment
        self.input_stats = input_stats
        # On the module's device with it (no per-batch host-to-device copy), never saved.
        mean, std = (torch.tensor(v, dtype=torch.float32)[:, None, None] for v in input_stats)
        self.register_buffer("input_mean", mean, persistent=False)
        self.register_buffer("input_std", std, persistent=False)
        self.seed = seed
        self._generator: torch.Generator | None = None
        self.spans = [OptimizerSpan(0, optimizer, scheduler), *restarts]
        # Set by a cohort (training.cohort): its members' updates run fused (`make_optimizer`).
        self.fused_update = False
        self._span: int | None = None  # the span whose optimiser trains now
        self._restored_epoch: int | None = None  # the epoch a resume checkpoint was saved in
        self.frozen = list(frozen or [])
        self.val_metrics = classification_metrics(num_classes).clone(prefix="val/")
        self.test_metrics = classification_metrics(num_classes).clone(prefix="test/")
        self.val_nll = NegativeLogLikelihood()
        self.test_nll = NegativeLogLikelihood()
        self.val_curve: list[dict[str, float]] = []
        # Per-epoch means of the logged training losses, kept for a resumed run to log again.
        self.train_curve: list[dict[str, float]] = []
        # The step Lightning logged each epoch's rows at, for a resumed run to log them again.
        self.epoch_steps: dict[int, int] = {}
        self._train_sums: dict[str, tuple[torch.Tensor, int]] = {}
        self.test_results: dict[str, float] = {}
        self.diverged_reason: str | None = None
        # Set by train_on_features; kept out of the module tree (it shares the model's layers).
        object.__setattr__(self, "_rest", None)
        self.channels_last = False

    def train(self, mode: bool = True) -> TransferClassifier:
        """Switch modes, but frozen stages always stay in eval mode."""
        super().train(mode)
        if mode:
            keep_frozen_in_eval(self.frozen)
        return self

    def train_on_features(self, rest: nn.Module) -> None:
        """Batches are from now on the frozen prefix's outputs, and only `rest` (the model's
        layers after it) runs on them (`training/frozen_features.py`)."""
        object.__setattr__(self, "_rest", rest)

    def use_channels_last(self) -> None:
        """Weights and every 4-d batch in NHWC layout from now on (`training/placement.py`)."""
        self.model.to(memory_format=torch.channels_last)
        self.channels_last = True

    def on_train_epoch_start(self) -> None:
        """The epoch's random streams seeded from (seed, epoch) (`training/seeding.py`: torch's
        global generator here, the augmentation's at its first batch), the method's phase for
        this epoch, and frozen running-stat modules in eval mode for every epoch: Lightning
        (2.2 and later) keeps the mode a module starts fit in, and timm builds models in
        training mode."""
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch, Stream.GLOBAL))
        self._generator = None
        self.frozen = self.method.on_epoch_start(self.model, self.current_epoch, self.frozen)
        keep_frozen_in_eval(self.frozen)
        if self._span_at(self.current_epoch) != self._span:  # the method's next optimiser
            self.trainer.strategy.setup_optimizers(self.trainer)
        self._train_sums = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images) if self._rest is None else self._rest(images)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 images become the model's input on the device, after the (cheap) transfer
        (as `models.inputs.prepare`: [0, 1], standardised); training batches are augmented
        first, whole, with the epoch's own generator. A frozen prefix's outputs pass as they are.
        With `channels_last`, 4-d inputs are laid out NHWC, as the weights are."""
        inputs, labels = batch
        if self._rest is None:
            if self.augment is not None and self.trainer.training:
                inputs = self.augment(inputs, self._augment_generator(inputs.device))
            inputs = (to_float(inputs) - self.input_mean) / self.input_std
        return (to_channels_last(inputs) if self.channels_last else inputs), labels

    def _augment_generator(self, device: torch.device) -> torch.Generator:
        """The augmentation's generator for this epoch, seeded from (seed, epoch)."""
        if self._generator is None or self._generator.device != device:
            seed = epoch_seed(self.seed, self.current_epoch, Stream.AUGMENT)
            self._generator = torch.Generator(device=device).manual_seed(seed)
        return self._generator

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        inputs, labels = batch
        features = None
        if self.method.needs_features:  # one forward pass gives the logits and the features
            logits, features = logits_and_features(self.model, self, inputs)
        else:
            logits = self(inputs)
        loss = nn.functional.cross_entropy(logits, labels)
        penalty = self.method.penalty(self.model, features)
        if penalty is not None:
            self._log_train("train/penalty", penalty, len(labels))
            loss = loss + penalty
        self._log_train("train/loss", loss, len(labels))
        return loss

    def _log_train(self, name: str, value: torch.Tensor, n: int) -> None:
        """Add a training loss to its epoch sum (fp32, whatever the precision), from which the
        train curve and the logged epoch mean come (`on_train_epoch_end`). The sum is this
        process's own (no sync across DDP ranks). Not `self.log` each step: Lightning's
        per-step bookkeeping cost about 1 ms a step on a CPU, 40% of its overhead on a run."""
        total, count = self._train_sums.get(name, (torch.zeros((), device=value.device), 0))
        self._train_sums[name] = (total + value.detach().float() * n, count + n)

    def on_train_epoch_end(self) -> None:
        """Log each training loss's epoch mean (Lightning writes it with the epoch's row)."""
        for name, (total, count) in self._train_sums.items():
            self.log(name, total / count, on_step=False, on_epoch=True, sync_dist=False)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """A NaN/inf loss stops the run on every process and marks it diverged."""
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        bad = not bool(torch.isfinite(loss.detach()).all())
        if self.trainer.strategy.reduce_boolean_decision(bad, all=False):
            self.diverged_reason = (
                f"non-finite training loss at epoch {self.current_epoch}, step {self.global_step}"
            )
            self.trainer.should_stop = True

    def _evaluate(self, batch: Any, metrics: Any, nll: NegativeLogLikelihood) -> None:
        images, labels = batch
        logits = self(images).float()
        metrics.update(logits, labels)
        nll.update(logits, labels)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, self.val_nll)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, self.test_nll)

    def _collect(self, metrics: Any, nll: NegativeLogLikelihood, prefix: str) -> dict[str, float]:
        values = {k: float(v) for k, v in metrics.compute().items()}
        values[f"{prefix}nll"] = float(nll.compute())
        metrics.reset()
        nll.reset()
        return values

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.val_metrics.reset()
            self.val_nll.reset()
            return
        values = self._collect(self.val_metrics, self.val_nll, "val/")
        self.log_dict(values, sync_dist=False)
        self.log("epoch_index", float(self.current_epoch))
        entry = {"epoch": self.current_epoch}
        entry.update({k.removeprefix("val/"): v for k, v in values.items()})
        self.val_curve.append(entry)
        means = {k: float(total / count) for k, (total, count) in self._train_sums.items()}
        self.train_curve.append({"epoch": self.current_epoch, **means})
        # Lightning logs this epoch's rows (these and the training means) at this step, a
        # private counter of its loop (tests/test_resume.py pins the steps of a resumed run).
        self.epoch_steps[self.current_epoch] = (
            self.trainer.fit_loop.epoch_loop._batches_that_stepped
        )
        if not math.isfinite(values["val/nll"]) and self.diverged_reason is None:
            self.diverged_reason = f"non-finite validation loss at epoch {self.current_epoch}"
            self.trainer.should_stop = True

    def on_test_epoch_end(self) -> None:
        values = self._collect(self.test_metrics, self.test_nll, "test/")
        self.log_dict(values)
        self.test_results = {k.removeprefix("test/"): v for k, v in values.items()}

    def on_train_start(self) -> None:
        """A resumed run logs the epochs restored from its checkpoint again (validation
        metrics and training losses), so its loggers, whose files of the earlier attempt are
        replaced, hold the whole curve, each epoch at the step the first attempt logged it at
        (as the uninterrupted run does); those rows carry `restored_from_checkpoint`."""
        train = {entry["epoch"]: entry for entry in self.train_curve}
        for entry in self.val_curve:
            metrics = {f"val/{k}": v for k, v in entry.items() if k != "epoch"}
            metrics.update({k: v for k, v in train.get(entry["epoch"], {}).items() if k != "epoch"})
            metrics["epoch_index"] = float(entry["epoch"])
            metrics["epoch"] = int(entry["epoch"])
            metrics[RESTORED] = 1.0  # logged again from the checkpoint, not trained now
            for logger in self.loggers:
                logger.log_metrics(metrics, step=self.epoch_steps[entry["epoch"]])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the curves and their steps in per-epoch checkpoints, so a resumed run has them
        whole. No generator state: each epoch seeds its own (`training/seeding.py`)."""
        checkpoint["transferlab"] = {
            "val_curve": self.val_curve,
            "train_curve": self.train_curve,
            "epoch_steps": self.epoch_steps,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("transferlab", {})
        self.val_curve = list(state.get("val_curve", []))
        self.train_curve = list(state.get("train_curve", []))
        self.epoch_steps = dict(state.get("epoch_steps", {}))
        # Called before the optimisers are made: what trains, and which optimiser's state the
        # checkpoint holds, are those of the epoch it was saved in.
        self._restored_epoch = int(checkpoint.get("epoch", 0))
        self.frozen = self.method.on_epoch_start(self.model, self._restored_epoch, self.frozen)

    def extra_parameter_groups(self) -> list[dict[str, Any]]:
        """Parameter groups of modules trained beside the model (an objective's heads)."""
        return []

    def _span_at(self, epoch: int) -> int:
        """The index of the optimiser span that trains epoch `epoch`."""
        return max(i for i, span in enumerate(self.spans) if span.first_epoch <= epoch)

    def configure_optimizers(self) -> Any:
        """The optimizer preset over the method's parameter groups; a group's `lr_scale`
        multiplies the budget's learning rate (the partial's `lr`). A method with several
        optimisers (`Method.spans`) gets the one of the epoch about to train; at the start of a
        resumed fit, that of the epoch its checkpoint was saved in, whose state it restores
        (Lightning restores a single-device or DDP module before making its optimisers)."""
        epoch = self.current_epoch if self._restored_epoch is None else self._restored_epoch
        self._restored_epoch = None
        self._span = self._span_at(epoch)
        span = self.spans[self._span]
        groups = [*self.method.parameter_groups(self.model), *self.extra_parameter_groups()]
        base_lr = getattr(span.optimizer, "keywords", {}).get("lr")
        for group in groups:
            scale = group.pop("lr_scale", 1.0)
            if scale != 1.0:
                group["lr"] = base_lr * scale
        optimizer = make_optimizer(span.optimizer, groups, fused=self.fused_update)
        if span.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": span.scheduler(optimizer)}
