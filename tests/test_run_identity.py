"""Run identity: the hash of every setting that can change a run's numbers, and nothing else.

Table-driven: pairs of command-line overrides that must give the same run id, and pairs that
must not, for every trainer, optimizer, scheduler, data, model and budget key. Configs are the
real Hydra composition of the shipped presets.
"""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from transferlab.store import ResultsStore, run_id, stage_config, stage_identity
from transferlab.store.identity import NOT_IDENTITY
from transferlab.store.schema import IDENTITY_VERSION
from transferlab.training.run import train

# (name, overrides of A, overrides of B): the target runs must share one id.
SAME_TARGET = [
    ("study name", [], ["study=other"]),
    ("results folder", [], ["paths.results=/elsewhere"]),
    ("dataset folder", [], ["paths.data=/elsewhere"]),
    ("loggers", [], ["logger=[csv]"]),
    ("logger setting", [], ["logger.wandb.project=other"]),
    ("threads", [], ["threads=1"]),
    ("force", [], ["force=true"]),
    ("cache", [], ["cache=false"]),
    ("resume", [], ["resume=false"]),
    ("keep checkpoints", [], ["keep_checkpoints=true"]),
    ("progress bar", [], ["trainer.enable_progress_bar=false"]),
    ("model summary", [], ["trainer.enable_model_summary=true"]),
    ("logging frequency", [], ["trainer.log_every_n_steps=1"]),
    ("checkpoint folder", [], ["callbacks.resume_checkpoint.dirpath=/tmp/x"]),
    ("resume interval", [], ["callbacks.resume_checkpoint.min_interval_s=0"]),
    ("dataset location", ["data@target=mnist"], ["data@target=mnist", "target.root=/x"]),
    ("unused init_path", [], ["init_path=/some/weights.pt"]),
    ("default value spelled out", [], ["train.lr=0.001", "+target.shifts=[]"]),
    ("scratch: freeze depth", ["init=scratch"], ["init=scratch", "freeze_depth=3"]),
    ("scratch: source", ["init=scratch"], ["init=scratch", "data@source=digits_rot45"]),
    ("scratch: source budget", ["init=scratch"], ["init=scratch", "pretrain.lr=0.1"]),
    ("scratch: source size", ["init=scratch"], ["init=scratch", "source_size=300"]),
    ("pool: validation share", ["val_protocol=pool"], ["val_protocol=pool", "val_share=0.3"]),
]

# (name, overrides of B): the target run must differ from the default run's.
DIFFERENT_TARGET = [
    ("trainer max epochs through the budget", ["train.epochs=20"]),
    ("trainer gradient clipping", ["+trainer.gradient_clip_val=1.0"]),
    ("trainer accumulation", ["+trainer.accumulate_grad_batches=2"]),
    ("trainer precision", ["trainer.precision=bf16-mixed"]),
    ("trainer accelerator", ["trainer.accelerator=gpu"]),
    ("trainer devices", ["trainer.devices=2"]),
    ("trainer strategy", ["trainer.strategy=ddp"]),
    ("trainer determinism", ["trainer.deterministic=false"]),
    ("trainer sanity steps", ["trainer.num_sanity_val_steps=2"]),
    ("trainer preset", ["trainer=gpu"]),
    ("optimizer preset", ["optimizer=sgd"]),
    ("optimizer betas", ["optimizer.betas=[0.8,0.99]"]),
    ("optimizer extra argument", ["+optimizer.amsgrad=true"]),
    ("scheduler preset", ["scheduler=none"]),
    ("scheduler extra argument", ["+scheduler.eta_min=0.0001"]),
    ("target lr", ["train.lr=0.01"]),
    ("target weight decay", ["train.weight_decay=0.1"]),
    ("target batch size", ["train.batch_size=16"]),
    ("target steps per epoch", ["train.min_steps_per_epoch=20"]),
    ("source lr", ["pretrain.lr=0.01"]),
    ("source epochs", ["pretrain.epochs=2"]),
    ("source batch size", ["pretrain.batch_size=32"]),
    ("source weight decay", ["pretrain.weight_decay=0.1"]),
    ("source steps per epoch", ["pretrain.min_steps_per_epoch=5"]),
    ("source dataset", ["data@source=digits_rot45"]),
    ("source size", ["source_size=300"]),
    ("target dataset", ["data@target=digits_inverted"]),
    ("target shift", ["+target.shifts=[{name: noise, std: 0.1}]"]),
    ("target shift parameter", ["data@target=digits_rot45", "target.shifts.0.degrees=30"]),
    ("dataset option", ["source.num_samples=1000"]),
    ("target size", ["target_size=50"]),
    ("image size", ["image_size=16"]),
    ("channels", ["channels=1"]),
    ("split seed", ["split_seed=1"]),
    ("seed", ["seed=1"]),
    ("model preset", ["model=test_vit"]),
    ("model argument", ["+model.kwargs.drop_rate=0.1"]),
    ("init", ["init=scratch"]),
    ("freeze depth", ["freeze_depth=1"]),
    ("selection rule", ["callbacks.selection.monitor=val/nll"]),
    ("a new callback", ["+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping"]),
    ("a new top-level setting", ["+mixup=0.2"]),
    ("augmentation", ["augment=flip_crop"]),
    ("augmentation parameter", ["augment=flip_crop", "augment.padding=4"]),
    ("validation protocol", ["val_protocol=pool"]),
    ("validation share", ["val_share=0.3"]),
    ("input normalisation", ["input_norm=unit"]),
]


def _target_id(compose, *overrides: str) -> str:
    cfg = compose(*overrides, fast=False)
    source = run_id(stage_config(cfg, "source")) if cfg.init == "source" else None
    return run_id(stage_config(cfg, "target", source))


def _source_id(compose, *overrides: str) -> str:
    return run_id(stage_config(compose(*overrides, fast=False), "source"))


@pytest.mark.parametrize("name, first, second", SAME_TARGET, ids=[c[0] for c in SAME_TARGET])
def test_settings_that_cannot_change_a_number_keep_the_id(compose, name, first, second):
    assert _target_id(compose, *first) == _target_id(compose, *second)


@pytest.mark.parametrize("name, overrides", DIFFERENT_TARGET, ids=[c[0] for c in DIFFERENT_TARGET])
def test_every_setting_that_can_change_a_number_changes_the_id(compose, name, overrides):
    assert _target_id(compose) != _target_id(compose, *overrides)


def test_file_init_is_another_run_than_hub_weights(compose):
    # which weights file: by its content, not its path (tests/test_content_identity.py)
    assert _target_id(compose, "init=file", "init_path=/a.pt") != _target_id(compose, "init=hub")


@pytest.mark.parametrize(
    "overrides",
    [
        ["data@target=digits_inverted"],
        ["target_size=50"],
        ["train.lr=0.01"],
        ["freeze_depth=2"],
        ["init=scratch"],
        ["study=other"],
    ],
)
def test_one_source_serves_every_target(compose, overrides):
    assert _source_id(compose) == _source_id(compose, *overrides)


@pytest.mark.parametrize(
    "overrides",
    [["pretrain.lr=0.01"], ["source_size=300"], ["seed=1"], ["optimizer=sgd"], ["image_size=16"]],
)
def test_the_source_stage_is_identified_by_its_own_settings(compose, overrides):
    assert _source_id(compose) != _source_id(compose, *overrides)


def test_a_fixed_pretraining_seed_shares_one_source_across_run_seeds(compose):
    shared = [_source_id(compose, "pretrain.seed=0", f"seed={s}") for s in range(3)]
    assert len(set(shared)) == 1
    assert _source_id(compose, "pretrain.seed=0") != _source_id(compose, "pretrain.seed=1")


def test_identity_names_settings_once_by_their_own_name(compose):
    cfg = compose(fast=False)
    for stage, budget in (("target", "train"), ("source", "pretrain")):
        ident = stage_identity(stage_config(cfg, stage))
        assert ident["identity_version"] == IDENTITY_VERSION and ident["stage"] == stage
        assert f"{budget}.lr" in ident and f"{budget}.epochs" in ident
        # references to the budget are covered by it, not hashed a second time
        assert not {"optimizer.lr", "trainer.max_epochs", "scheduler.T_max"} & set(ident)
        assert not any(k.startswith(("budget", "dataset", "train_size")) for k in ident)
        assert not any(k.startswith(("logger", "paths", "run.")) for k in ident)
    assert "target.name" not in stage_identity(stage_config(cfg, "source"))
    assert NOT_IDENTITY  # the documented denylist exists (docs/records.md lists it)


@pytest.mark.parametrize("stage, budget", [("target", "train"), ("source", "pretrain")])
def test_presets_take_lr_and_epochs_from_the_stage_budget(compose, stage, budget):
    cfg = compose(f"{budget}.lr=0.0123", f"{budget}.weight_decay=0.0456", f"{budget}.epochs=7")
    stage_cfg = stage_config(cfg, stage)
    optimizer = instantiate(stage_cfg.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0123)
    assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(0.0456)
    assert stage_cfg.trainer.max_epochs == 7 and stage_cfg.scheduler.T_max == 7
    assert stage_cfg.budget.lr == pytest.approx(0.0123)


def test_a_record_made_under_an_older_identity_rule_is_not_taken_as_done(compose):
    first = train(compose("init=scratch"))
    store = ResultsStore(first["config"]["paths"]["results"], "default")
    old = {**store.load(first["run_id"]), "identity_version": IDENTITY_VERSION - 1}
    store.write(old)
    assert not store.is_final(first["run_id"])
    again = train(compose("init=scratch"))
    assert again.get("skipped") is None and again["identity_version"] == IDENTITY_VERSION
    assert again["run_id"] == first["run_id"]
