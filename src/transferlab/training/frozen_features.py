"""Frozen layers computed once: when the first depth groups of a stage are frozen (running
statistics too) and nothing is augmented, their outputs for the training, validation and test
examples are computed once, before training, and only the rest of the model trains on them.
A linear probe then costs little more than its head. The split is checked to be exact for the
model (`models/prefix.py`); a test compares the metrics with the uncached path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from transferlab.data import DatasetSplits, ImageTensors
from transferlab.models.inputs import prepare
from transferlab.models.prefix import split_frozen_prefix

log = logging.getLogger(__name__)

#: Examples in the probe batch that checks a split is exact.
PROBE_EXAMPLES = 4


@dataclass
class FeatureTensors:
    """A split's examples as the frozen prefix's outputs (float), with their labels."""

    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs, self.labels

    def to(self, device: torch.device) -> FeatureTensors:
        """The same examples on `device`."""
        return FeatureTensors(self.inputs.to(device), self.labels.to(device))


@torch.no_grad()
def _outputs(
    prefix: nn.Module, split: ImageTensors, stats: Any, batch_size: int, device: torch.device
) -> FeatureTensors:
    """The prefix's outputs for `split`, computed on `device` and kept where the split's images
    are (on the GPU when the data live there, `training/placement.py`)."""
    chunks = [
        prefix(prepare(split.images[i : i + batch_size].to(device), stats)).to(split.images.device)
        for i in range(0, len(split), batch_size)
    ]
    return FeatureTensors(torch.cat(chunks), split.labels)


def frozen_prefix_data(
    module: Any,
    splits: DatasetSplits,
    train_split: ImageTensors,
    batch_size: int,
    device: torch.device,
) -> tuple[nn.Module, DatasetSplits, FeatureTensors] | None:
    """(rest of the model, splits with val/test as prefix outputs, training prefix outputs), or
    None when the model has no exact frozen prefix (then it trains on images as usual).

    `module` is the stage's TransferClassifier: its model, input statistics and training mode
    (frozen running-stat modules in eval) are the ones the uncached path uses.
    """
    model = module.model.to(device)
    probe = prepare(train_split.images[:PROBE_EXAMPLES].to(device), module.input_stats)
    split = split_frozen_prefix(model, probe, lambda: module.train(True))
    if split is None:
        log.info("no exact frozen prefix for this model and depth: training on images")
        return None
    prefix, rest = split
    stats = module.input_stats
    # In eval mode, then each module back in its own mode: a timm split's prefix holds the whole
    # model, which would otherwise train in eval mode (Lightning keeps the mode fit starts in).
    modes = {m: m.training for m in prefix.modules()}
    prefix.eval()
    try:
        outputs = {
            name: _outputs(prefix, data, stats, batch_size, device)
            for name, data in (("train", train_split), ("val", splits.val), ("test", splits.test))
        }
    finally:
        for submodule, training in modes.items():
            submodule.training = training
    log.info(
        "frozen prefix computed once: inputs of the trained part are %s",
        tuple(outputs["train"].inputs.shape[1:]),
    )
    return rest, replace(splits, val=outputs["val"], test=outputs["test"]), outputs["train"]
