"""The compute floor of one stage: the optimiser steps and evaluations `fit_stage` makes, in a
plain PyTorch loop (no Lightning, no loggers, no checkpoints), on the same data, model, inputs,
optimiser and schedule. Frozen layers are computed once, as transferlab does, so the floor and
transferlab do the same arithmetic. Used by study_speed.py and lightning_overhead.py.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from transferlab.data import DatasetSplits, ImageTensors
from transferlab.models import create_model, freeze_groups, keep_frozen_in_eval
from transferlab.models.inputs import input_stats, prepare
from transferlab.models.prefix import split_frozen_prefix
from transferlab.training.loaders import eval_loader, train_loader
from transferlab.training.metrics import NegativeLogLikelihood, classification_metrics
from transferlab.training.seeding import Stream, epoch_seed


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights in memory."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def evaluate(forward: Any, loader: Any, metrics: Any, nll: Any) -> dict[str, float]:
    """The project's validation/test metrics over one loader."""
    metrics.reset()
    nll.reset()
    for inputs, labels in loader:
        logits = forward(inputs).float()
        metrics.update(logits, labels)
        nll.update(logits, labels)
    out = {k: float(v) for k, v in metrics.compute().items()}
    out["nll"] = float(nll.compute())
    return out


class _Tensors:
    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs, self.labels


def build(stage: DictConfig, splits: DatasetSplits, init_path: str | None) -> tuple[Any, list]:
    """The stage's model, seeded, initialised and frozen as `fit_stage` builds it."""
    L.seed_everything(int(stage.seed), workers=True, verbose=False)
    model, _ = create_model(
        stage.model.name,
        num_classes=len(splits.classes),
        in_chans=splits.channels,
        image_size=splits.image_size,
        init=stage.init,
        init_path=init_path,
        target_classes=tuple(splits.classes),
        **stage.model.kwargs,
    )
    return model, freeze_groups(model, int(stage.get("freeze_depth") or 0))


def fit_plain(
    stage: DictConfig,
    splits: DatasetSplits,
    train: ImageTensors,
    init_path: str | None = None,
) -> tuple[torch.nn.Module, float, float]:
    """Train, validate each epoch, keep the best epoch's weights, test them: (model, best
    validation accuracy, its test accuracy)."""
    torch.use_deterministic_algorithms(bool(stage.trainer.deterministic))
    model, frozen = build(stage, splits, init_path)
    stats = input_stats(model, splits.channels, str(stage.input_norm))
    bs, k = int(stage.budget.batch_size), len(splits.classes)

    def train_mode() -> None:
        model.train()
        keep_frozen_in_eval(frozen)

    data = {
        n: _Tensors(prepare(s.images, stats), s.labels)
        for n, s in (("train", train), ("val", splits.val), ("test", splits.test))
    }
    forward = model
    if frozen or int(stage.get("freeze_depth") or 0) > 0:
        split = split_frozen_prefix(model, data["train"].inputs[:4], train_mode)
        if split is not None:
            prefix, forward = split
            with torch.no_grad():
                data = {
                    n: _Tensors(torch.cat([prefix(x) for x in d.inputs.split(bs)]), d.labels)
                    for n, d in data.items()
                }
    optimizer = instantiate(stage.optimizer)([p for p in model.parameters() if p.requires_grad])
    scheduler = instantiate(stage.scheduler)(optimizer)
    min_steps = int(stage.budget.get("min_steps_per_epoch") or 1)
    loader = train_loader(data["train"], bs, int(stage.seed), min_steps)
    metrics, nll = classification_metrics(k), NegativeLogLikelihood()
    best_acc, best_state = -1.0, None
    for epoch in range(int(stage.budget.epochs)):
        loader.sampler.set_epoch(epoch)  # each epoch's order and draws, as Lightning's run has
        torch.manual_seed(epoch_seed(int(stage.seed), epoch, Stream.GLOBAL))
        train_mode()
        for inputs, labels in loader:
            loss = torch.nn.functional.cross_entropy(forward(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        acc = evaluate(forward, eval_loader(data["val"], bs), metrics, nll)["acc"]
        if acc > best_acc:
            best_acc, best_state = acc, snapshot(model)
    model.load_state_dict(best_state)
    model.eval()
    test = evaluate(forward, eval_loader(data["test"], bs), metrics, nll)["acc"]
    return model, best_acc, test
