"""A stage's optimisers: one per span of epochs a method trains with a fresh optimiser and
schedule (`Method.spans`; LP-FT: the probe's, then fine-tuning's), built from the optimizer and
scheduler presets against the span's own budget (its epochs and learning rate), so a preset
that reads `${budget.lr}` or `${budget.epochs}` gets the span's values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from transferlab.methods import Span
from transferlab.presets import load_preset

OptimizerFactory = Callable[..., Any]
SchedulerFactory = Callable[..., Any]


@dataclass(frozen=True)
class OptimizerSpan:
    """An optimiser factory (over parameter groups) and a scheduler factory (over the
    optimiser; None: a constant rate), used from epoch `first_epoch` on."""

    first_epoch: int
    optimizer: OptimizerFactory
    scheduler: SchedulerFactory | None = None


def _preset(stage_cfg: DictConfig, group: str, name: str | None) -> Any:
    """The stage's own `group` preset (name None), or the shipped preset `name`."""
    node = stage_cfg.get(group) if name is None else load_preset(group, name)
    return OmegaConf.to_container(node, resolve=False) if node is not None else None


def build_span(stage_cfg: DictConfig, span: Span) -> OptimizerSpan:
    """The factories of `span`: its presets resolved in a copy of the stage config whose budget
    has the span's epochs and learning rate (the stage's presets over its whole budget are
    instantiated as they are)."""
    whole = span.epochs == int(stage_cfg.budget.epochs)
    if whole and span.lr is None and span.optimizer is None and span.scheduler is None:
        scheduler = instantiate(stage_cfg.scheduler) if stage_cfg.get("scheduler") else None
        return OptimizerSpan(span.first_epoch, instantiate(stage_cfg.optimizer), scheduler)
    budget = OmegaConf.to_container(stage_cfg.budget, resolve=True)
    budget["epochs"] = span.epochs
    if span.lr is not None:
        budget["lr"] = span.lr
    config = OmegaConf.to_container(stage_cfg, resolve=False)
    config.update(
        budget=budget,
        optimizer=_preset(stage_cfg, "optimizer", span.optimizer),
        scheduler=_preset(stage_cfg, "scheduler", span.scheduler),
    )
    built = OmegaConf.create(config)
    scheduler = instantiate(built.scheduler) if built.scheduler else None
    return OptimizerSpan(span.first_epoch, instantiate(built.optimizer), scheduler)


def build_spans(stage_cfg: DictConfig, spans: list[Span]) -> list[OptimizerSpan]:
    """The factories of every span of a stage, in order."""
    return [build_span(stage_cfg, span) for span in spans]
