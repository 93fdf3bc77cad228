"""The LightningModule and loaders of a domain adaptation stage (`adaptation`): each step
trains on a source batch, plus a batch of the target's unlabelled pool (methods that read it)
and a batch of its labelled examples (when `target_size` > 0), in one forward pass.

The classification loss covers every labelled example of the step (source and target); the
method adds its adaptation loss on the source and target features. An epoch is as many steps
as the source loader's, whatever the method, so every method trains on the same source batches
for the same number of steps as `source_only`. After the test, the shift between the source's
and the target's test sets is measured on the selected model's features (the record's
`adaptation.shift`), with the analysis's own distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch import nn

from transferlab.adaptation import Adaptation
from transferlab.adaptation.data import AdaptationData
from transferlab.data.image_ops import derive_seed
from transferlab.models.features import extract_features, logits_and_features
from transferlab.training.loaders import train_loader
from transferlab.training.module import TransferClassifier

#: The loaders of a step, by part: the source's, then the target's labelled and unlabelled.
SOURCE, LABELLED, UNLABELLED = "source", "labelled", "unlabelled"
#: Examples of each test set whose features the adapted shift is measured on (as the analysis).
SHIFT_EXAMPLES = 500
#: What the record says each `selection` chose the epoch on.
SELECTION_NAMES = {
    "source": "source validation (no target label read)",
    "oracle": "oracle: target validation labels",
}


def _feature_width(model: nn.Module, channels: int, size: int) -> int:
    """The width of the classifier's input (one blank image in eval mode)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        _, features = logits_and_features(model, model, torch.zeros(1, channels, size, size))
    model.train(was_training)
    return int(features.reshape(1, -1).shape[1])


class AdaptationModule(TransferClassifier):
    """Trains `model` and the method's heads (a domain classifier) on combined batches; only
    `model` is kept and handed over. Validation and test are the classifier's, as any target
    stage's (the validation set is the one `method.selection` names)."""

    def __init__(self, model: nn.Module, *, channels: int, size: int, **kw: Any) -> None:
        super().__init__(model, **kw)
        assert isinstance(self.method, Adaptation)
        self.heads = self.method.heads(_feature_width(model, channels, size))

    def extra_parameter_groups(self) -> list[dict[str, Any]]:
        params = list(self.heads.parameters())
        return [{"params": params, "lr_scale": 1.0}] if params else []

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Each part of a combined training batch prepared as a plain batch is."""
        prepare = super().on_after_batch_transfer
        if isinstance(batch, dict):
            return {k: prepare(v, dataloader_idx) for k, v in batch.items()}
        return prepare(batch, dataloader_idx)

    def progress(self) -> float:
        """The share of the stage's optimiser steps done, in [0, 1]."""
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        return min(self.global_step / total, 1.0)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Every learning rate at its base times the method's factor for this step."""
        factor = self.method.lr_factor(self.progress())
        optimizers = self.optimizers()
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                group.setdefault("base_lr", group["lr"])
                group["lr"] = group["base_lr"] * factor

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        parts = [k for k in (SOURCE, LABELLED, UNLABELLED) if k in batch]
        sizes = [len(batch[k][0]) for k in parts]
        images = torch.cat([batch[k][0] for k in parts])
        logits, features = logits_and_features(self.model, self, images)
        by_part = dict(zip(parts, zip(logits.split(sizes), features.split(sizes))))
        labelled = [k for k in (SOURCE, LABELLED) if k in batch]
        loss = nn.functional.cross_entropy(
            torch.cat([by_part[k][0] for k in labelled]),
            torch.cat([batch[k][1] for k in labelled]),
        )
        self._log_train("train/class_loss", loss, sum(sizes))
        target = [by_part[k][1] for k in (LABELLED, UNLABELLED) if k in batch]
        if UNLABELLED in batch:
            extra = self.method.loss(
                self.heads, by_part[SOURCE][1], torch.cat(target), self.progress()
            )
            if extra is not None:
                self._log_train("train/adaptation_loss", extra, sum(sizes))
                loss = loss + extra
        self._log_train("train/loss", loss, sum(sizes))
        return loss


def adaptation_loader(
    data: AdaptationData, batch_size: int, seed: int, min_steps: int, workers: int = 0
) -> CombinedLoader:
    """The parts' loaders stepped together, each in its own seeded order; an epoch is the
    source loader's steps (the target's loaders cycle their examples to fill them)."""
    source = train_loader(data.source, batch_size, seed, min_steps, workers)
    steps = len(source)
    loaders = {SOURCE: source}
    for name, part in ((LABELLED, data.labelled), (UNLABELLED, data.unlabelled)):
        if part is not None:
            part_seed = derive_seed(f"{name} target", seed)
            loaders[name] = train_loader(part, batch_size, part_seed, steps, workers)
    return CombinedLoader(loaders, mode="min_size")


def _sample(split: Any, n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """(uint8 images, labels) of at most `n` examples of `split`, drawn by `seed`."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    order = torch.sort(order).values
    return split.images_at(order.to(split.labels.device)), split.labels[order].cpu().numpy()


def adapted_shift(
    module: TransferClassifier, source_test: Any, target_test: Any, seed: int
) -> dict[str, Any]:
    """The distances between the source's and the target's test sets on the model's
    pre-logits features (`analysis.distances.pair_distances`, as the analysis measures a
    source model's): whether adaptation shrank the measured shift."""
    from transferlab.analysis.distances import pair_distances

    stats = module.input_stats
    source_images, source_labels = _sample(source_test, SHIFT_EXAMPLES, seed)
    target_images, target_labels = _sample(target_test, SHIFT_EXAMPLES, seed)
    x = extract_features(module.model, source_images, stats=stats).numpy()
    y = extract_features(module.model, target_images, stats=stats).numpy()
    distances = pair_distances(x, source_labels, y, target_labels, seed)
    return {k: float(v) if isinstance(v, float) else v for k, v in distances.items()}


def adaptation_summary(
    module: TransferClassifier, data: AdaptationData, target_test: Any, seed: int
) -> dict[str, Any]:
    """The record's `adaptation` entry: the selection rule, the examples of each part and the
    shift measured on the selected model's features."""
    method = module.method
    assert isinstance(method, Adaptation)
    return {
        "method": method.name,
        "selection": method.selection,
        "selected_on": SELECTION_NAMES[method.selection],
        **data.counts(),
        "shift": adapted_shift(module, data.source_test, target_test, seed),
    }
