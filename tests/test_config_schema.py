"""The closed, typed run config: every shipped preset passes; unknown keys, `+` keys nothing
reads, wrong types and values out of range are one-line errors naming the key (and the nearest
valid one) before anything runs."""

from __future__ import annotations

import pytest
from conftest import CONF_DIR

from transferlab.errors import ConfigError
from transferlab.training.config_schema import RunConfig, check_override_keys, check_run_config

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


def _presets(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


SHIPPED = (
    [f"model={m}" for m in _presets("model")]
    + [f"optimizer={m}" for m in _presets("optimizer")]
    + [f"scheduler={m}" for m in _presets("scheduler")]
    + [f"trainer={m}" for m in _presets("trainer")]
    + [f"method={m}" for m in _presets("method")]
    + [f"data@target={m}" for m in _presets("data")]
    + ["logger=[wandb,csv,tensorboard]", "logger=[]", "experiment=quickstart", "study='2024'"]
    + ["+trainer.gradient_clip_val=1.0", "pretrain.seed=3", "target_size=null", "threads=2"]
)


@pytest.mark.parametrize("override", SHIPPED)
def test_every_shipped_preset_and_documented_setting_passes(compose, override):
    check_run_config(compose(override))


# (override, fragments the one-line error must hold)
BAD = {
    "+freeze_dept=2": ["unknown setting freeze_dept", "did you mean freeze_depth?"],
    "+train.lrr=0.1": ["unknown setting train.lrr", "did you mean train.lr?"],
    "+pretrain.epoch=3": ["pretrain.epoch", "did you mean pretrain.epochs?"],
    "+paths.result=x": ["paths.result", "did you mean paths.results?"],
    "+trainer.gradient_clip_vall=1": ["trainer.gradient_clip_vall", "trainer.gradient_clip_val"],
    "+optimizer.momentumm=0.9": ["optimizer.momentumm", "valid keys of optimizer"],
    "+callbacks.timer.every=2": ["callbacks.timer.every", "callbacks.timer takes no settings"],
    "+logger.csv.versio=1": ["logger.csv.versio", "did you mean logger.csv.version?"],
    "seed=1.5": ["seed must be an integer, got 1.5"],
    "split_seed=abc": ["split_seed must be an integer, got 'abc'"],
    "train.lr=abc": ["train.lr must be a number, got 'abc'"],
    "train.epochs=2.5": ["train.epochs must be an integer"],
    "train.lr=0": ["train.lr must be > 0"],
    "train.weight_decay=-1": ["train.weight_decay must be >= 0"],
    "pretrain.batch_size=0": ["pretrain.batch_size must be >= 1"],
    "pretrain.seed=-2": ["pretrain.seed must be >= 0"],
    "threads=-1": ["threads must be >= 1, got -1"],
    "seed=-1": ["seed must be >= 0, got -1"],
    "target_size=-1": ["target_size must be >= 0"],
    "freeze_depth=-1": ["freeze_depth must be >= 0"],
    "image_size=0": ["image_size must be >= 1"],
    "channels=2": ["channels=2", "valid choices: 1, 3"],
    "force=yes": ["force must be true or false, got 'yes'"],
    "resume=1": ["resume must be true or false, got 1"],
    "model.name=[1]": ["model.name must be a string"],
    "study=2024": ["study must be a string", "study='2024'"],
    "train.lr=inf": ["train.lr must be a finite number, got inf"],
    "pretrain.weight_decay=nan": ["pretrain.weight_decay must be a finite number"],
}


@pytest.mark.parametrize("override", sorted(BAD))
def test_bad_setting_is_one_line_naming_it(compose, override):
    with pytest.raises(ConfigError) as err:
        check_run_config(compose(override))
    message = str(err.value)
    assert "\n" not in message
    for fragment in BAD[override]:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_every_top_level_key_of_the_default_config_is_declared(compose):
    declared = {f for f in RunConfig.__dataclass_fields__}
    assert set(compose()) == declared  # nothing composed that the schema does not know


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("freeze_dept=2", "did you mean freeze_depth?"),
        ("train.lrr=2", "did you mean train.lr?"),
        ("sed=1", "did you mean seed?"),
    ],
)
def test_command_line_key_typos_are_caught_before_composition(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        check_override_keys([override], GROUPS)


def test_command_line_check_lets_groups_sweeps_and_hydra_keys_through():
    fine = [
        "model=test_vit",
        "data@source=shapes",
        "seed=0,1,2",
        "train.lr=0.1",
        "+trainer.gradient_clip_val=1",  # checked after composition, against the Trainer
        "hydra/launcher=parallel",
        "hydra.sweeper.max_batch_size=2",
        "experiment=quickstart",
        "~callbacks.timer",
    ]
    check_override_keys(fine, GROUPS)
