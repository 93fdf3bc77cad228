"""A Lightning callback a test adds to a real run (`+callbacks.probe._target_=...`) to see what
the model is fed: the first training batch after the module's own transfer hook."""

from __future__ import annotations

from typing import Any, ClassVar

from lightning.pytorch import Callback


class FirstBatch(Callback):
    """Keeps a copy of the first training batch's inputs, and the module's input statistics."""

    seen: ClassVar[dict[str, Any]] = {}

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, index: int) -> None:
        if "inputs" not in FirstBatch.seen:
            FirstBatch.seen["inputs"] = batch[0].detach().float().cpu().clone()
            FirstBatch.seen["device"] = batch[0].device.type
            FirstBatch.seen["stats"] = pl_module.input_stats

    @classmethod
    def take(cls) -> dict[str, Any]:
        """What the last run saw, cleared for the next."""
        seen, cls.seen = cls.seen, {}
        return seen


__all__ = ["FirstBatch"]


class StartWeights(Callback):
    """Keeps a copy of the model's weights when fitting starts, by stage (before any step)."""

    seen: ClassVar[dict[str, dict[str, Any]]] = {}

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        state = {k: v.detach().cpu().clone() for k, v in pl_module.model.state_dict().items()}
        StartWeights.seen[str(pl_module.trainer.default_root_dir)] = state


__all__ += ["StartWeights"]
