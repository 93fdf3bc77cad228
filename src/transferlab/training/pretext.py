"""The LightningModule of a source stage trained without labels (`objectives`): the timm model
without a classifier plus the objective's heads, trained on the objective's loss; validation
and test report that loss (`val/loss`, `test/loss`), and the selection callback keeps the
epoch with the lowest validation loss.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from transferlab.data.image_ops import derive_seed
from transferlab.objectives import Objective
from transferlab.training.module import TransferClassifier

#: What an unsupervised source stage selects its epoch on, and how.
SELECT_ON, SELECT_MODE = "val/loss", "min"
#: Classes the inherited (unused) accuracy metrics are built for.
UNUSED_CLASSES = 2
#: What seeds the validation and test corruptions (with the run seed): the same every epoch,
#: so validation losses of different epochs compare.
EVAL_STREAM = "objective evaluation"


def _output_width(model: nn.Module, channels: int, size: int) -> int:
    """The width of the pooled features a classifier-less model outputs (one blank image in
    eval mode: no statistics or random state change)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        width = model(torch.zeros(1, channels, size, size)).shape[-1]
    model.train(was_training)
    return int(width)


class PretextModule(TransferClassifier):
    """Trains `model` (built without a classifier) and `objective.heads` on `objective.loss`.

    The labels of every batch are dropped unread. Only `model` is kept and handed over; the
    heads stay here.
    """

    def __init__(self, model: nn.Module, objective: Objective, channels: int, size: int, **kw):
        super().__init__(model, num_classes=UNUSED_CLASSES, **kw)
        self.objective = objective
        self.heads = objective.heads(_output_width(model, channels, size), channels, size)
        self._sums: dict[str, list[torch.Tensor]] = {}
        self._eval_generator: torch.Generator | None = None

    def extra_parameter_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.heads.parameters()), "lr_scale": 1.0}]

    def _loss(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        pixels = (self.input_mean, self.input_std)
        return self.objective.loss(self.model, self.heads, images, pixels, generator)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, _ = batch  # labels never read
        loss = self._loss(images, self._augment_generator(images.device))
        self._log_train("train/loss", loss, len(images))
        return loss

    def _eval_step(self, batch: Any, split: str) -> None:
        images, _ = batch
        if self._eval_generator is None or self._eval_generator.device != images.device:
            seed = derive_seed(EVAL_STREAM, self.seed)
            self._eval_generator = torch.Generator(device=images.device).manual_seed(seed)
        total, count = self._sums.get(split, [torch.zeros((), device=images.device), 0])
        loss = self._loss(images, self._eval_generator).detach().float()
        self._sums[split] = [total + loss * len(images), count + len(images)]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._eval_generator = None  # the same corruptions at every validation

    on_test_epoch_start = on_validation_epoch_start

    def _mean(self, split: str) -> float:
        """The split's mean loss over every example, summed across processes (DDP): every rank
        selects the same epoch."""
        total, count = self._sums.pop(split, [torch.zeros((), device=self.device), 0])
        both = torch.stack([total, torch.as_tensor(float(count), device=total.device)])
        both = self.trainer.strategy.reduce(both, reduce_op="sum")
        return float(both[0] / both[1].clamp(min=1))

    def on_validation_epoch_end(self) -> None:
        loss = self._mean("val")
        if self.trainer.sanity_checking:
            return
        self.log("val/loss", loss, sync_dist=False)
        self.log("epoch_index", float(self.current_epoch))
        self.val_curve.append({"epoch": self.current_epoch, "loss": loss})
        means = {k: float(t / c) for k, (t, c) in self._train_sums.items()}
        self.train_curve.append({"epoch": self.current_epoch, **means})
        loop = self.trainer.fit_loop.epoch_loop
        self.epoch_steps[self.current_epoch] = loop._batches_that_stepped
        if not math.isfinite(loss) and self.diverged_reason is None:
            self.diverged_reason = f"non-finite validation loss at epoch {self.current_epoch}"
            self.trainer.should_stop = True

    def on_test_epoch_end(self) -> None:
        loss = self._mean("test")
        self.log("test/loss", loss)
        self.test_results = {"loss": loss}
