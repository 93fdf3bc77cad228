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


def _fit(compose, tmp_path: Path, model: str, depth: int, cache: bool, *overrides: str):
    """The target stage of a run with `depth` frozen groups (set on the stage view: a scratch
    run's own config ignores freeze_depth), and the model's weights before training."""
    cfg = compose(*RUN, f"model={model}", f"feature_cache={str(cache).lower()}", *overrides)
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


#: timm's ResNet applies this dropout functionally in forward_head, outside any child module.
DROPOUT = "+model.kwargs.drop_rate=0.5"


@pytest.mark.parametrize(
    ("model", "depth", "overrides"),
    [
        ("test_resnet", 3, ()),
        ("test_resnet", 5, ()),
        ("test_vit", 7, ()),
        ("test_resnet", 5, (DROPOUT,)),  # the linear probe keeps forward_head, dropout included
    ],
)
def test_cached_prefix_gives_the_same_metrics(compose, tmp_path, caplog, model, depth, overrides):
    with caplog.at_level(logging.INFO, logger="transferlab.training.frozen_features"):
        cached = _fit(compose, tmp_path, model, depth, True, *overrides)
    assert "frozen prefix computed once" in caplog.text  # the cache was used
    plain = _fit(compose, tmp_path, model, depth, False, *overrides)
    _assert_same_metrics(cached, plain)


def test_dropout_outside_the_children_trains_on_images(compose, tmp_path, caplog):
    # Frozen up to layer2: the only split is the chain of children, which would skip the head's
    # dropout in training mode; the run trains on images, with the dropout (the uncached path).
    with caplog.at_level(logging.INFO, logger="transferlab.training.frozen_features"):
        result = _fit(compose, tmp_path, "test_resnet", 3, True, DROPOUT)
    assert result.status == "completed"
    assert "no exact frozen prefix" in caplog.text
    assert "frozen prefix computed once" not in caplog.text


def _assert_same_metrics(cached, plain) -> None:
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
    # A ResNet whose forward_head drops out at random: the chain of its children lacks that
    # dropout, so with trainable blocks there is no split; its linear probe splits at
    # forward_features, and the rest draws the dropout as the whole model does.
    net, _ = create_model(
        "test_resnet", num_classes=10, in_chans=3, image_size=16, init="scratch", drop_rate=0.5
    )
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert split_frozen_prefix(net, *_probe_and_mode(net, 3)) is None
    probe, train_mode = _probe_and_mode(net, 5)
    prefix, rest = split_frozen_prefix(net, probe, train_mode)
    train_mode()
    with torch.no_grad():
        torch.manual_seed(1)
        whole = net(probe)
        torch.manual_seed(1)
        assert torch.allclose(rest(prefix(probe)), whole, atol=1e-6)
    assert not torch.equal(whole, net.eval()(probe))  # the dropout did act
    # the checks ran the model in training mode: its BatchNorm statistics are as they were
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    # Nothing frozen: nothing to split.
    net, _ = create_model("test_resnet", num_classes=10, in_chans=3, image_size=16, init="scratch")
    assert split_frozen_prefix(net, *_probe_and_mode(net, 0)) is None
