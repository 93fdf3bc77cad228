"""LP-FT as Kumar et al. (2022) run it: the probe trains with its own learning rate, optimiser
and schedule over its own epochs, then fine-tuning starts a fresh optimiser and schedule at the
stage's learning rate (seen in a real Trainer, epoch by epoch); the one-schedule variant stays
as `lp_ft_shared`; a run resumed in either phase ends as the uninterrupted one; and every LP-FT
setting is part of the run id."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest

from transferlab.models.weights import classifier_parameters
from transferlab.store import run_id, stage_config
from transferlab.training.fit import fit_stage
from transferlab.training.run import _training_data, _with_run_info

EPOCHS = 4
RUN = [
    "init=scratch",
    "logger=[csv]",
    f"train.epochs={EPOCHS}",
    "train.lr=0.002",
    "train.weight_decay=0.0001",
    "target_size=40",
    "model=test_resnet",
    "optimizer=adamw",
    "scheduler=cosine",
    "callbacks.resume_checkpoint.min_interval_s=0",  # a resume checkpoint every epoch
]


class Optimisers(L.Callback):
    """At each epoch's first training step: the optimiser in use, its first group's settings,
    how many weights it updates, whether it has taken a step yet, its schedule's horizon."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_train_batch_start(self, trainer: L.Trainer, module, batch, batch_idx: int) -> None:
        if batch_idx:
            return
        optimizer = trainer.optimizers[0]
        configs = trainer.lr_scheduler_configs
        self.epochs.append(
            {
                "optimizer": optimizer,
                "group": {k: v for k, v in optimizer.param_groups[0].items() if k != "params"},
                "weights": sum(p.numel() for g in optimizer.param_groups for p in g["params"]),
                "fresh": not optimizer.state,
                "horizon": configs[0].scheduler.T_max if configs else None,
            }
        )


class Stop(Exception):
    """Ends a fit as a kill would, after the last epoch's resume checkpoint."""


class StopAt(L.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            raise Stop


def _stage(compose, *overrides: str):
    """The target stage with the method of `overrides` (set on the stage view: a scratch run's
    own config has no method)."""
    cfg = compose(*RUN, *overrides)
    stage = stage_config(cfg, "target")
    stage.method = cfg.method
    return stage


def _fit(stage, run_dir: Path, monkeypatch, *extra: L.Callback):
    import transferlab.training.fit as fit

    stage = _with_run_info(stage, "m", run_dir)
    splits, train = _training_data(stage)
    real = fit.build_callbacks
    added = {f"extra{i}": c for i, c in enumerate(extra)}
    monkeypatch.setattr(fit, "build_callbacks", lambda c: {**real(c), **added})
    return fit_stage(stage, splits, train, run_dir)


def _cosine(lr: float, epoch: int, horizon: int) -> float:
    return lr * (1 + math.cos(math.pi * epoch / horizon)) / 2


def test_the_probe_has_its_own_optimiser_and_fine_tuning_a_fresh_one(
    compose, tmp_path, monkeypatch
):
    stage = _stage(
        compose,
        "method=lp_ft",
        "method.probe_share=0.5",
        "method.probe_lr=0.05",
        "method.probe_optimizer=sgd",  # another kind than the stage's AdamW
        "method.probe_scheduler=cosine",
    )
    seen = Optimisers()
    result = _fit(stage, tmp_path / "run", monkeypatch, seen)
    probe, probe_end, tune, tune_end = seen.epochs
    net, names = result.model, classifier_parameters(result.model)
    classifier = sum(p.numel() for n, p in net.named_parameters() if n in names)
    everything = sum(p.numel() for p in net.parameters())

    # the probe: the SGD preset (its momentum) at probe_lr, a cosine over its 2 epochs
    assert type(probe["optimizer"]).__name__ == "SGD" and probe["fresh"]
    assert probe["group"]["lr"] == pytest.approx(0.05)
    assert probe["group"]["momentum"] == 0.9 and probe["group"]["weight_decay"] == 0.0001
    assert probe["weights"] == classifier and probe["horizon"] == 2
    assert probe_end["optimizer"] is probe["optimizer"] and not probe_end["fresh"]
    assert probe_end["group"]["lr"] == pytest.approx(_cosine(0.05, 1, 2))

    # fine-tuning: a fresh AdamW at train.lr over every weight, its own cosine over 2 epochs
    assert tune["optimizer"] is not probe["optimizer"] and tune["fresh"]
    assert type(tune["optimizer"]).__name__ == "AdamW"
    assert tune["group"]["lr"] == pytest.approx(0.002) and tune["group"]["betas"] == (0.9, 0.999)
    assert tune["weights"] == everything and tune["horizon"] == 2
    assert tune_end["optimizer"] is tune["optimizer"]
    assert tune_end["group"]["lr"] == pytest.approx(_cosine(0.002, 1, 2))

    assert result.phases == [
        {
            "phase": "linear_probe",
            "epochs": 2,
            "trainable_parameters": classifier,
            "lr": 0.05,
            "optimizer": "sgd",
            "scheduler": "cosine",
        },
        {"phase": "finetune", "epochs": 2, "trainable_parameters": everything},
    ]


def test_lp_ft_shared_keeps_one_optimiser_and_schedule(compose, tmp_path, monkeypatch):
    stage = _stage(compose, "method=lp_ft_shared", "method.probe_share=0.5")
    seen = Optimisers()
    result = _fit(stage, tmp_path / "run", monkeypatch, seen)
    first = seen.epochs[0]["optimizer"]
    assert all(e["optimizer"] is first for e in seen.epochs)
    assert all(e["horizon"] == EPOCHS for e in seen.epochs)
    for epoch, entry in enumerate(seen.epochs):
        assert entry["group"]["lr"] == pytest.approx(_cosine(0.002, epoch, EPOCHS))
    assert [(p["phase"], p["epochs"]) for p in result.phases] == [
        ("linear_probe", 2),
        ("finetune", 2),
    ]


@pytest.mark.parametrize(
    "stop",
    [2, 3],
    ids=["saved-in-the-probe-resumed-into-fine-tuning", "saved-and-resumed-in-fine-tuning"],
)
def test_a_resumed_lp_ft_run_ends_as_the_uninterrupted_one(compose, tmp_path, monkeypatch, stop):
    overrides = ("method=lp_ft", "method.probe_share=0.5", "+model.kwargs.drop_rate=0.3")
    whole = _fit(_stage(compose, *overrides), tmp_path / "whole", monkeypatch)
    with pytest.raises(Stop):
        _fit(_stage(compose, *overrides), tmp_path / "stopped", monkeypatch, StopAt(stop))
    assert (tmp_path / "stopped" / "checkpoints" / "last.ckpt").exists()
    seen = Optimisers()
    resumed = _fit(_stage(compose, *overrides), tmp_path / "stopped", monkeypatch, seen)
    assert len(seen.epochs) == EPOCHS - stop  # it trained only the epochs left
    assert resumed.best_epoch == whole.best_epoch
    assert len(resumed.val_curve) == len(whole.val_curve) == EPOCHS
    for got, want in zip(resumed.val_curve, whole.val_curve, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert resumed.test == pytest.approx(whole.test, abs=1e-6)


def _target_id(compose, *overrides: str) -> str:
    cfg = compose(*overrides, fast=False)
    return run_id(stage_config(cfg, "target", run_id(stage_config(cfg, "source"))))


def test_every_lp_ft_setting_is_part_of_the_run_id(compose):
    variants = [
        [],
        ["method.probe_share=0.5"],
        ["method.probe_lr=0.02"],
        ["method.probe_optimizer=sgd"],
        ["method.probe_scheduler=none"],
    ]
    ids = {_target_id(compose, "method=lp_ft", *v) for v in variants}
    ids.add(_target_id(compose, "method=lp_ft_shared"))
    assert len(ids) == len(variants) + 1
