"""Methods that choose which depth groups train: fine-tuning with a frozen prefix and surgical
fine-tuning of any subset (linear probing then fine-tuning: `lp_ft.py`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from transferlab.methods.base import Context, Method, group_names, out_of_groups
from transferlab.models.depth import (
    check_freeze_depth,
    freeze_group_set,
    model_display_name,
)


class FineTune(Method):
    """The first `freeze_depth` depth groups frozen (BatchNorm statistics too), the rest trained:
    0 is full fine-tuning, `num_depth_groups - 1` a linear probe."""

    name = "finetune"

    def check(self, model: nn.Module, context: Context) -> None:
        check_freeze_depth(model_display_name(model), context.freeze_depth, group_names(model))

    def setup(self, model: nn.Module, context: Context) -> list[nn.Module]:
        self.check(model, context)
        return freeze_group_set(model, range(context.freeze_depth))

    def frozen_prefix_depth(self, context: Context) -> int:
        return context.freeze_depth


class Surgical(Method):
    """Surgical fine-tuning (Lee et al., ICLR 2023): only the depth groups in `tune_stages` train
    (any subset, by index: 0 is the stem), and the head when `train_head` (a new label space
    needs a trained head); every other group is frozen, BatchNorm statistics included."""

    name = "surgical"

    def __init__(self, tune_stages: list[int], train_head: bool = True) -> None:
        self.tune_stages = list(tune_stages)
        self.train_head = train_head

    def check(self, model: nn.Module, context: Context) -> None:
        count = len(group_names(model))
        bad = [i for i in self.tune_stages if isinstance(i, bool) or not isinstance(i, int)]
        if not self.tune_stages or bad or not all(0 <= i < count for i in self.tune_stages):
            raise out_of_groups("tune_stages", self.tune_stages, model)

    def setup(self, model: nn.Module, context: Context) -> list[nn.Module]:
        self.check(model, context)
        count = len(group_names(model))
        tuned = set(self.tune_stages) | ({count - 1} if self.train_head else set())
        return freeze_group_set(model, (i for i in range(count) if i not in tuned))

    def settings(self) -> dict[str, Any]:
        return {"tune_stages": self.tune_stages, "train_head": self.train_head}
