"""Sources never see a target's examples: views of one base dataset split its training pool into
a source part and a target part, and each stage of a real run config draws only from its part."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import yaml

from transferlab.data import build_splits, source_pool
from transferlab.data.registry import get_dataset
from transferlab.errors import ConfigError
from transferlab.store import stage_configs
from transferlab.store.identity import stage_identity
from transferlab.training.run import _training_data

CONF_DATA = Path(__file__).resolve().parents[1] / "conf" / "data"
#: Presets whose base dataset is built in (generated or shipped: loadable here). Presets of a
#: torchvision dataset share their base only with themselves and go through the same code.
OFFLINE = ("digits", "shapes", "gratings")


def _presets() -> dict[str, str]:
    """Shipped data presets (file stem -> base dataset name) whose data load offline."""
    out = {}
    for path in sorted(CONF_DATA.glob("*.yaml")):
        name = get_dataset(yaml.safe_load(path.read_text())["name"]).name
        if name in OFFLINE:
            out[path.stem] = name
    return out


PRESETS = _presets()
SHARED = [(a, b) for a, b in itertools.product(PRESETS, PRESETS) if PRESETS[a] == PRESETS[b]]


def origins(part) -> set[int]:
    return set(part.origin.tolist())


def test_every_family_of_views_is_covered() -> None:
    """Guard for the pair list below: the digits views are there, and each preset pairs itself."""
    digits_views = [p for p, base in PRESETS.items() if base == "digits"]
    assert len(digits_views) >= 10
    assert all((p, p) in SHARED for p in PRESETS)


@pytest.mark.parametrize(("source", "target"), SHARED, ids=[f"{a}->{b}" for a, b in SHARED])
def test_source_stage_never_holds_an_example_the_target_can_draw(
    source: str, target: str, compose
) -> None:
    """By example origin (index in the base dataset): the source stage's training pool is
    disjoint from the target stage's whole pool (every training and budget-validation example
    of every size and seed), and from its validation and test splits."""
    cfg = compose(f"data@source={source}", f"data@target={target}", "target_size=200")
    source_cfg, target_cfg = stage_configs(cfg)
    assert (source_cfg.pool, target_cfg.pool) == ("source", "target")
    source_splits, source_train = _training_data(source_cfg)
    target_splits, target_train = _training_data(target_cfg)
    target_pool = build_splits(
        cfg.target,
        image_size=cfg.image_size,
        channels=cfg.channels,
        split_seed=cfg.split_seed,
        pool="target",
        target_share=cfg.target_pool_share,
    ).train
    seen = origins(source_splits.train)
    assert origins(source_train) <= seen
    assert not seen & origins(target_pool)
    assert origins(target_train) | origins(target_splits.val) <= origins(target_pool)
    assert not seen & (origins(source_splits.test) | origins(source_splits.val))


def test_parts_are_class_stratified_and_cover_the_pool() -> None:
    kwargs = {"image_size": 8, "split_seed": 3, "target_share": 0.3}
    whole = build_splits({"name": "digits"}, image_size=8, split_seed=3).train
    src = build_splits({"name": "digits"}, pool="source", **kwargs).train
    tgt = build_splits({"name": "digits"}, pool="target", **kwargs).train
    assert origins(src) | origins(tgt) == origins(whole) and not origins(src) & origins(tgt)
    for c in range(10):
        n = int((whole.labels == c).sum())
        assert int((tgt.labels == c).sum()) == round(0.3 * n)
    again = build_splits({"name": "digits"}, pool="target", **{**kwargs, "split_seed": 3}).train
    assert torch.equal(again.origin, tgt.origin)
    other = build_splits({"name": "digits"}, pool="target", **{**kwargs, "split_seed": 4}).train
    assert not torch.equal(other.origin, tgt.origin)


def test_a_source_of_another_base_dataset_trains_on_its_whole_pool(compose) -> None:
    cfg = compose("data@source=shapes", "data@target=digits")
    source_cfg, target_cfg = stage_configs(cfg)
    assert source_pool(cfg.source, cfg.target) == "all"
    assert source_cfg.pool == "all" and target_cfg.pool == "target"
    whole = build_splits(cfg.source, image_size=cfg.image_size, split_seed=0).train
    splits, _ = _training_data(source_cfg)
    assert origins(splits.train) == origins(whole)
    # the share cannot change such a source: it is not part of its identity
    other = compose("data@source=shapes", "data@target=digits", "target_pool_share=0.3")
    assert stage_identity(stage_configs(other)[0]) == stage_identity(source_cfg)


def test_the_share_is_part_of_both_identities_when_the_base_is_shared(compose) -> None:
    a = stage_configs(compose("data@source=digits_rot45"))
    b = stage_configs(compose("data@source=digits_rot45", "target_pool_share=0.3"))
    assert stage_identity(a[0]) != stage_identity(b[0])
    assert stage_identity(a[1]) != stage_identity(b[1])


def test_scratch_draws_the_same_examples_as_a_transferred_run(compose) -> None:
    """A cell's arms draw their budget from the same part, whatever the source."""
    _, scratch = stage_configs(compose("init=scratch"))
    _, far = stage_configs(compose("data@source=shapes"))
    _, close = stage_configs(compose("data@source=digits_rot45"))
    draws = [_training_data(c)[1].origin for c in (scratch, far, close)]
    assert all(torch.equal(draws[0], d) for d in draws[1:])


def test_a_budget_the_target_part_cannot_supply_is_one_line_before_training(compose) -> None:
    from transferlab.training.checks import preflight

    cfg = compose("target_size=1000", "data@source=digits_rot45")
    with pytest.raises(ConfigError, match="exceeds the"):
        preflight(cfg)
