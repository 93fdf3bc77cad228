"""Fine-tuning methods, the `method` config group: each a small class with the same API
(`base.Method`), built from its preset (`conf/method/<name>.yaml`) by Hydra."""

from transferlab.methods.base import Context, Method, Span, label
from transferlab.methods.freezing import FineTune, Surgical
from transferlab.methods.layer_decay import LayerDecay
from transferlab.methods.lora import LoRA
from transferlab.methods.lp_ft import LPFT, LPFTShared
from transferlab.methods.penalties import BSS, L2SP

#: The method a config without one means (what `freeze_depth` alone always meant).
DEFAULT = FineTune

__all__ = [
    "BSS",
    "DEFAULT",
    "L2SP",
    "LPFT",
    "LPFTShared",
    "Context",
    "FineTune",
    "LayerDecay",
    "LoRA",
    "Method",
    "Span",
    "Surgical",
    "label",
]
