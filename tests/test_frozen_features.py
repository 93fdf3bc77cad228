"""Frozen layers computed once (`feature_cache`): the same numbers as training on images, frozen
layers (BatchNorm statistics included) left bit-identical by a real Trainer on either path, and
no cache where the split would not be exact."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from transferlab.models import create_model, freeze_groups
from transferlab.models.prefix import split_frozen_prefix
from transferlab.store import stage_config
from transferlab.training.fit import fit_stage
from transferlab.training.run import _training_data, _with_run_info

RUN = ["init=scratch", "logger=[csv]", "train.epochs=2", "target_size=40"]


def _fit(compose, tmp_path: Path, model: str, depth: int, cache: bool):
    """The target stage of a run with `depth` frozen groups (set on the stage view: a scratch
    run's own config ignores freeze_depth), and the model's weights before training."""
    cfg = compose(*RUN, f"model={model}", f"feature_cache={str(cache).lower()}")
    stage = stage_config(cfg, "target")
    stage.freeze_depth = depth
    run_dir = tmp_path / f"{model}-{depth}-{cache}"
    stage = _with_run_info(stage, "x", run_dir)
    splits, train = _training_data(stage)
    torch.manual_seed(0)
    result = fit_stage(stage, splits, train, run_dir)
    return result


def _initial_state(model: str, depth: int) -> dict[str, torch.Tensor]:
    """The weights `fit_stage` starts from (it seeds with the run seed, 0, first)."""
    import lightning as L

    L.seed_everything(0, workers=True, verbose=False)
    net, _ = create_model(model, num_classes=10, in_chans=3, image_size=16, init="scratch")
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize(
    ("model", "depth"), [("test_resnet", 3), ("test_resnet", 5), ("test_vit", 7)]
)
def test_cached_prefix_gives_the_same_metrics(compose, tmp_path, caplog, model, depth):
    with caplog.at_level(logging.INFO, logger="transferlab.training.frozen_features"):
        cached = _fit(compose, tmp_path, model, depth, cache=True)
    assert "frozen prefix computed once" in caplog.text  # the cache was used
    plain = _fit(compose, tmp_path, model, depth, cache=False)
    assert cached.best_epoch == plain.best_epoch
    for got, want in ((cached.val, plain.val), (cached.test, plain.test)):
        assert got.keys() == want.keys()
        for key in got:
            assert got[key] == pytest.approx(want[key], abs=1e-4), key
    for a, b in zip(cached.val_curve, plain.val_curve, strict=True):
        assert a["nll"] == pytest.approx(b["nll"], abs=1e-4)


@pytest.mark.parametrize("cache", [True, False])
def test_frozen_groups_stay_bit_identical_under_a_real_trainer(compose, tmp_path, cache):
    depth = 3
    before = _initial_state("test_resnet", depth)
    result = _fit(compose, tmp_path, "test_resnet", depth, cache)
    net = result.model
    frozen = set()
    for _name, params in _groups(net)[:depth]:
        frozen.update(params)
    after = net.state_dict()
    frozen_keys = [k for k in after if any(k.startswith(p.rsplit(".", 1)[0] + ".") for p in frozen)]
    assert any("running_mean" in k for k in frozen_keys)
    for key in frozen_keys:
        assert torch.equal(after[key], before[key]), key
    trained = [k for k in after if k not in frozen_keys and after[k].is_floating_point()]
    assert any(not torch.equal(after[k], before[k]) for k in trained)


def _groups(net):
    from transferlab.models import depth_groups

    return depth_groups(net)


def _probe_and_mode(net, depth):
    frozen = freeze_groups(net, depth)

    def train_mode():
        net.train()
        for module in frozen:
            module.eval()

    return torch.rand(4, 3, 16, 16), train_mode


def test_no_split_where_it_would_not_be_exact():
    # ViT at depth 3: the position embedding is added outside any child module, so the chain
    # of children is not the model; the head-only split does not apply (blocks train).
    vit, _ = create_model("test_vit", num_classes=10, in_chans=3, image_size=16, init="scratch")
    assert split_frozen_prefix(vit, *_probe_and_mode(vit, 3)) is None
    # A linear probe of the same ViT splits at forward_features ...
    assert split_frozen_prefix(vit, *_probe_and_mode(vit, 7)) is not None
    # ... unless its frozen blocks drop paths at random in training mode.
    drop, _ = create_model(
        "test_vit", num_classes=10, in_chans=3, image_size=16, init="scratch", drop_path_rate=0.5
    )
    assert split_frozen_prefix(drop, *_probe_and_mode(drop, 7)) is None
    # Nothing frozen: nothing to split.
    net, _ = create_model("test_resnet", num_classes=10, in_chans=3, image_size=16, init="scratch")
    assert split_frozen_prefix(net, *_probe_and_mode(net, 0)) is None
