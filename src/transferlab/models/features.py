"""Pre-logit features of a timm model, for analyses of what transfer did to the representation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from transferlab.models.inputs import UNIT_STATS, Stats, prepare
from transferlab.models.weights import classifier_modules

#: images per forward pass in extract_features
DEFAULT_FEATURE_BATCH = 256


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = DEFAULT_FEATURE_BATCH,
    stats: Stats = UNIT_STATS,
) -> torch.Tensor:
    """Pre-logit features (``forward_features`` then ``forward_head(pre_logits=True)``).

    ``images`` are uint8 (N, C, H, W); runs in eval mode on the model's device, restores every
    module's own train/eval flag afterwards, and returns float32 (N, D) on the CPU.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    modes = {module: module.training for module in model.modules()}
    model.eval()
    chunks = []
    try:
        for start in range(0, images.shape[0], batch_size):
            batch = prepare(images[start : start + batch_size].to(device), stats, dtype)
            pooled = model.forward_head(model.forward_features(batch), pre_logits=True)
            chunks.append(pooled.reshape(batch.shape[0], -1).float().cpu())
    finally:
        for module, training in modes.items():
            module.training = training
    if not chunks:
        return torch.empty(0, int(getattr(model, "num_features", 0)), dtype=torch.float32)
    return torch.cat(chunks)


def logits_and_features(
    model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`forward(inputs)` (the logits) and the input `model`'s classifier got in that very pass
    (its pre-logits features): one forward, so both come from the same pooling and dropout
    mask, whatever the model does between its blocks and its classifier."""
    (classifier,) = classifier_modules(model)
    seen: list[torch.Tensor] = []
    handle = classifier.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    try:
        logits = forward(inputs)
    finally:
        handle.remove()
    if len(seen) != 1:
        raise RuntimeError(f"the classifier ran {len(seen)} times in one forward pass, not once")
    return logits, seen[0]
