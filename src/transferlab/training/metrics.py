"""Classification metrics from torchmetrics, the same set on validation and test."""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

CALIBRATION_BINS = 15


def classification_metrics(num_classes: int) -> MetricCollection:
    """Accuracy (micro), macro F1/precision/recall and expected calibration error (L1)."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
            "precision": MulticlassPrecision(num_classes, average="macro"),
            "recall": MulticlassRecall(num_classes, average="macro"),
            "ece": MulticlassCalibrationError(num_classes, n_bins=CALIBRATION_BINS, norm="l1"),
        }
    )


class NegativeLogLikelihood(MeanMetric):
    """Mean cross-entropy per example (the NLL of the predicted distribution)."""

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        losses = torch.nn.functional.cross_entropy(logits.float(), target, reduction="none")
        super().update(losses)
