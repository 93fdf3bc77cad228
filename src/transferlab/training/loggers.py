"""Loggers of our own, built from the `logger` config group like Lightning's."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger


class WandbLogger(LightningWandbLogger):
    """Lightning's W&B logger, minus the `anonymous` argument it always passes to `wandb.init`:
    W&B ignores it and warns in every process ("The anonymous setting has no effect"). Reads
    Lightning's private `_wandb_init` (tests/test_run_end_to_end.py reads the W&B files)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wandb_init.pop("anonymous", None)
