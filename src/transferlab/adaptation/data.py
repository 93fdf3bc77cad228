"""What an adaptation stage reads: the labelled source examples its source stage trained on,
the target's `target_size` labelled examples (none for unsupervised adaptation), the rest of
the target's training pool without its labels, the validation set that selects the epoch
(the source's, or the target's for `oracle`) and the target's test set.

The target's labelled examples are drawn as any target run's (class-stratified, nested across
sizes); the unlabelled ones are the pool's remaining examples, drawn (when capped by
`unlabelled_size`) without reading a label.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from transferlab.data import DatasetSplits, stratified_subset, unlabelled_subset
from transferlab.errors import ConfigError

#: Which validation set an adaptation method's `selection` means.
ORACLE = "oracle"


@dataclass(frozen=True)
class AdaptationData:
    """The training examples of an adaptation stage (each in memory or streamed)."""

    source: Any  # labelled source examples
    labelled: Any | None  # labelled target examples (None: unsupervised adaptation)
    unlabelled: Any | None  # target examples whose labels are never read (None: source_only)
    source_test: Any  # the source's test set: where the adapted features' shift is measured

    def __len__(self) -> int:
        """Training examples of every part."""
        parts = (self.source, self.labelled, self.unlabelled)
        return sum(len(part) for part in parts if part is not None)

    def to(self, device: torch.device) -> AdaptationData:
        """Every part on `device`."""
        moved = {
            name: None if part is None else part.to(device) for name, part in vars(self).items()
        }
        return AdaptationData(**moved)

    def counts(self) -> dict[str, int]:
        """Examples of each part, for the record."""
        return {
            "source_examples": len(self.source),
            "labelled_target_examples": 0 if self.labelled is None else len(self.labelled),
            "unlabelled_target_examples": 0 if self.unlabelled is None else len(self.unlabelled),
        }


def check_label_spaces(method: str, source: DatasetSplits, target: DatasetSplits) -> None:
    """An adaptation method trains one classifier on both datasets: their classes must be the
    same, in the same order (one line naming both otherwise)."""
    if tuple(source.classes) == tuple(target.classes):
        return
    raise ConfigError(
        f"method={method} adapts between datasets with one label space, but source "
        f"{source.description} has classes {list(source.classes)} and target "
        f"{target.description} has {list(target.classes)}; choose a target with the source's "
        "classes, or a fine-tuning method"
    )


def target_parts(
    target: DatasetSplits,
    labelled_size: int | None,
    unlabelled_size: int | None,
    seed: int,
    reads_pool: bool,
) -> tuple[Any | None, Any | None]:
    """(labelled, unlabelled) examples of the target's training pool: `labelled_size` drawn
    as a target run draws them (none when 0), and the rest of the pool (capped at
    `unlabelled_size`) without labels, when the method reads it (`labelled_size` None: the
    whole pool is labelled, as for any target run)."""
    pool = target.train
    labelled_idx = torch.zeros(0, dtype=torch.long)
    has_labels = labelled_size is None or labelled_size > 0
    if has_labels:
        labelled_idx = stratified_subset(
            pool.labels,
            labelled_size,
            seed,
            classes=target.classes,
            dataset=target.description,
        )
    if not reads_pool:
        return (pool.subset(labelled_idx) if has_labels else None), None
    rest = torch.ones(len(pool), dtype=torch.bool)
    rest[labelled_idx] = False
    rest_idx = torch.nonzero(rest).squeeze(1)
    if len(rest_idx) == 0:
        raise ConfigError(
            f"target_size={labelled_size} labels the whole training pool of "
            f"{target.description} ({len(pool)} examples): none is left unlabelled to adapt to; "
            "use a smaller target_size"
        )
    if unlabelled_size is not None and unlabelled_size > len(rest_idx):
        raise ConfigError(
            f"method.unlabelled_size={unlabelled_size} exceeds the {len(rest_idx)} unlabelled "
            f"examples left in the training pool of {target.description}"
        )
    drawn = unlabelled_subset(len(rest_idx), unlabelled_size, seed, dataset=target.description)
    unlabelled = pool.subset(rest_idx[drawn])
    return (pool.subset(labelled_idx) if has_labels else None), unlabelled


def selection_splits(target: DatasetSplits, source: DatasetSplits, selection: str) -> DatasetSplits:
    """The target's splits with the validation set `selection` names: the source's, or the
    target's own (`oracle`); the test set is always the target's."""
    return target if selection == ORACLE else replace(target, val=source.val)
