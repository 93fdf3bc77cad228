"""Loggers of our own, built from the `logger` config group like Lightning's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger


class WandbLogger(LightningWandbLogger):
    """Lightning's W&B logger, minus the `anonymous` argument it always passes to `wandb.init`:
    W&B ignores it and warns in every process ("The anonymous setting has no effect"). Reads
    Lightning's private `_wandb_init` (tests/test_run_end_to_end.py reads the W&B files).

    `tags` are the user's, added to `run_tags` (the run's own: stage, init, datasets);
    `log_source_checkpoint` is read by the run (`training/artifacts.py`), not by W&B.
    """

    def __init__(
        self,
        *args: Any,
        tags: Sequence[str] = (),
        run_tags: Sequence[str] = (),
        notes: str | None = None,
        log_source_checkpoint: bool = False,
        **kwargs: Any,
    ) -> None:
        merged = [*run_tags, *(t for t in tags if t not in run_tags)]
        super().__init__(*args, tags=merged, notes=notes, **kwargs)
        self.log_source_checkpoint = log_source_checkpoint
        self._wandb_init.pop("anonymous", None)
