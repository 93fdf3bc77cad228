"""Split a partly frozen model into its frozen prefix and the rest, so the prefix's outputs can
be computed once and only the rest trained (`training/frozen_features.py`).

A split is only offered when it is exact for this model, checked on a probe batch rather than
assumed from its class:

* the rest applied to the prefix's output equals the model's output;
* no parameter that trains is reached by the prefix (its output needs no gradient);
* the prefix gives the same output in training mode (as the training loop runs it, frozen
  running-stat modules in eval) as in eval mode: no dropout or drop-path inside it;
* in training mode too, the rest applied to the prefix's output equals the model's output, both
  passes drawing their random numbers from one seed. A split of children misses what a model
  applies outside them: timm's ResNet and EfficientNet apply their `drop_rate` dropout
  functionally in `forward_head`, so the chain of children would train without it while the
  whole model (and the scratch arm) trains with it. Seeded alike, equal draws give equal outputs
  when the split runs the model's random layers and only those, in its order, so the check is
  exact rather than a statistical comparison of two stochastic passes (which a small probe batch
  could pass by chance), and it catches any random operation the split drops, adds or reorders,
  wherever the model applies it, not only the ones a rule about `drop_rate` would know of. A
  refused split costs only speed: the whole model then runs every step.

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
#: Seed of the two training-mode passes compared (any seed: both draw the same numbers).
PROBE_SEED = 0


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


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=EXACT_ATOL)


def _seeded(run: Callable[[torch.Tensor], torch.Tensor], probe: torch.Tensor) -> torch.Tensor:
    """`run(probe)` with the random generators seeded with PROBE_SEED, and their states restored
    after (the check draws nothing from the run's own streams)."""
    devices = [probe.device] if probe.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(PROBE_SEED)
        return run(probe)


def _is_exact(
    model: nn.Module,
    prefix: nn.Module,
    rest: nn.Module,
    probe: torch.Tensor,
    train_mode: Callable[[], None],
) -> bool:
    was_training = model.training
    buffers = [b.detach().clone() for b in model.buffers()]  # training mode updates statistics
    try:
        model.eval()
        with torch.no_grad():
            cut = prefix(probe)
            if not _same(model(probe), rest(cut)):
                return False
        if prefix(probe).requires_grad:  # only a trainable parameter gives it a gradient
            return False
        train_mode()
        with torch.no_grad():
            if not (torch.equal(prefix(probe), cut) and torch.equal(prefix(probe), cut)):
                return False
            return _same(_seeded(model, probe), _seeded(lambda x: rest(prefix(x)), probe))
    except (RuntimeError, TypeError, ValueError):
        return False
    finally:
        with torch.no_grad():
            for buffer, saved in zip(model.buffers(), buffers, strict=True):
                buffer.copy_(saved)
        model.train(was_training)
        if was_training:
            train_mode()


def split_frozen_prefix(
    model: nn.Module,
    probe: torch.Tensor,
    train_mode: Callable[[], None],
    candidates: Iterable[Callable] = CANDIDATES,
) -> tuple[nn.Module, nn.Module] | None:
    """(prefix, rest) with rest(prefix(x)) == model(x) in eval and in training mode, the prefix
    frozen and deterministic; None when no candidate split is exact for `model` (then the whole
    model runs every step).

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
