"""Per-run overhead without losing anything: the selected epoch's weights are kept in memory
(and travel in the resume checkpoint), and resume checkpoints are throttled."""

from __future__ import annotations

from pathlib import Path

import torch

from transferlab.training.run import train

RUN = ["init=scratch", "logger=[csv]", "train.epochs=3", "keep_checkpoints=true", "study=ck"]


def _checkpoints(results: Path) -> list[Path]:
    """Every checkpoint file anywhere under the study's run folders."""
    return sorted((results / "ck" / "runs").rglob("*.ckpt"))


def test_throttled_resume_checkpoint_writes_none_in_a_short_run(compose, tmp_path):
    record = train(compose(*RUN, "callbacks.resume_checkpoint.min_interval_s=3600"))
    assert record["status"] == "completed"
    assert _checkpoints(tmp_path / "results") == []  # no best.ckpt either: weights in memory


def test_resume_checkpoint_holds_the_best_weights_so_far(compose, tmp_path):
    record = train(compose(*RUN, "callbacks.resume_checkpoint.min_interval_s=0"))
    (last,) = _checkpoints(tmp_path / "results")
    assert last.name == "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["epoch"] == 2  # written after the last (0-based) epoch's validation
    kept = next(v for k, v in state["callbacks"].items() if k.startswith("BestWeights"))
    assert kept["best_epoch"] == record["best_epoch"]
    assert kept["best_score"] == record["metrics"]["val"]["acc"]
    assert set(kept["weights"]) == set(state["state_dict"])


def test_a_finished_run_leaves_no_checkpoint_on_disk(compose, tmp_path):
    """Lightning's default per-epoch checkpoint (under the first logger's folder) stays off: a
    study of a thousand runs would otherwise keep a thousand copies of the weights."""
    run = ["init=scratch", "logger=[wandb,csv]", "train.epochs=2", "study=ck"]
    record = train(compose(*run, "callbacks.resume_checkpoint.min_interval_s=0"))
    assert record["status"] == "completed"
    run_dir = tmp_path / "results" / "ck" / "runs" / record["run_id"]
    assert run_dir.is_dir()
    assert _checkpoints(tmp_path / "results") == []
