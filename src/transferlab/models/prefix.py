"""Split a partly frozen model into its frozen prefix and the rest, so the prefix's outputs can
be computed once and only the rest trained (`training/frozen_features.py`).

A split is only offered when it is exact for this model, checked on a probe batch rather than
assumed from its class:

* the rest applied to the prefix's output equals the model's output;
* no parameter that trains is reached by the prefix (its output needs no gradient);
* the prefix gives the same output in training mode (as the training loop runs it, frozen
  running-stat modules in eval) as in eval mode: no dropout or drop-path inside it.

Two candidate splits are tried: the model's children as a chain (nn.Sequential containers
expanded), cut after the longest run of modules without trainable parameters, which suits
ResNets and other plain stacks at any depth; and timm's `forward_features` / `forward_head`,
which suits any timm model whose trainable parameters are all in its head (a linear probe).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

#: Largest difference between the split and the whole model on the probe batch.
EXACT_ATOL = 1e-5


class Chain(nn.Module):
    """Modules applied one after another (shares them with the model, copies nothing)."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.parts:
            x = module(x)
        return x


class Call(nn.Module):
    """One method of the model as a module (e.g. timm's `forward_head`)."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(x)


def _flat_children(module: nn.Module) -> list[nn.Module]:
    out: list[nn.Module] = []
    for child in module.children():
        out.extend(_flat_children(child) if isinstance(child, nn.Sequential) else [child])
    return out


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _chain_split(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    parts = _flat_children(model)
    cut = 0
    while cut < len(parts) and not _trains(parts[cut]):
        cut += 1
    if cut == 0 or cut == len(parts):
        return None
    return Chain(parts[:cut]), Chain(parts[cut:])


def _timm_split(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        return None
    return Call(model, "forward_features"), Call(model, "forward_head")


CANDIDATES: tuple[Callable[[nn.Module], tuple[nn.Module, nn.Module] | None], ...] = (
    _chain_split,
    _timm_split,
)


def _is_exact(
    model: nn.Module,
    prefix: nn.Module,
    rest: nn.Module,
    probe: torch.Tensor,
    train_mode: Callable[[], None],
) -> bool:
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            whole = model(probe)
            cut = prefix(probe)
            if whole.shape != rest(cut).shape or not torch.allclose(
                whole, rest(cut), atol=EXACT_ATOL
            ):
                return False
        if prefix(probe).requires_grad:  # only a trainable parameter gives it a gradient
            return False
        train_mode()
        with torch.no_grad():
            return torch.equal(prefix(probe), cut) and torch.equal(prefix(probe), cut)
    except (RuntimeError, TypeError, ValueError):
        return False
    finally:
        model.train(was_training)
        if was_training:
            train_mode()


def split_frozen_prefix(
    model: nn.Module,
    probe: torch.Tensor,
    train_mode: Callable[[], None],
    candidates: Iterable[Callable] = CANDIDATES,
) -> tuple[nn.Module, nn.Module] | None:
    """(prefix, rest) with rest(prefix(x)) == model(x), the prefix frozen and deterministic;
    None when no candidate split is exact for `model` (then the whole model runs every step).

    `probe` is a batch of model inputs; `train_mode` puts the model in training mode as the
    training loop does (frozen running-stat modules kept in eval).
    """
    if not any(p.requires_grad for p in model.parameters()):
        return None
    for candidate in candidates:
        split = candidate(model)
        if split is not None and _is_exact(model, *split, probe, train_mode):
            return split
    return None
