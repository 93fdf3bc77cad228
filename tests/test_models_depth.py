"""Depth groups and freezing across architecture families (ResNet, ViT, ConvNeXt, EfficientNet)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferlab.errors import ConfigError
from transferlab.models import (
    create_model,
    depth_groups,
    freeze_groups,
    keep_frozen_in_eval,
    num_depth_groups,
    validate_model,
)

IMAGE_SIZE = 32
NUM_CLASSES = 5
BATCH = 8
# model name -> preset kwargs (as in conf/model)
ARCHS = {
    "test_resnet": {},
    "test_vit": {"patch_size": 4},
    "test_convnext": {"output_stride": 16},
    "test_efficientnet": {},
}
BN_ARCHS = ["test_resnet", "test_efficientnet"]


def _model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model, _ = create_model(
        name, num_classes=NUM_CLASSES, in_chans=3, image_size=IMAGE_SIZE, **ARCHS[name]
    )
    return model


def _batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    return images, torch.randint(0, NUM_CLASSES, (BATCH,), generator=gen)


def _frozen_names(model: nn.Module, depth: int) -> set[str]:
    return {p for _, params in depth_groups(model)[:depth] for p in params}


def _running_stat_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._NormBase)}


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_stages_are_ordered_and_cover_every_parameter_once(name):
    model = _model(name)
    stages = depth_groups(model)
    names = [s for s, _ in stages]
    assert names[0] == "stem" and names[-1] == "head"
    assert len(set(names)) == len(names) == num_depth_groups(model) >= 3
    flat = [p for _, params in stages for p in params]
    assert sorted(flat) == sorted(n for n, _ in model.named_parameters())
    assert len(flat) == len(set(flat))
    classifier = {id(p) for p in model.get_classifier().parameters()}
    head = {id(p) for n, p in model.named_parameters() if n in set(stages[-1][1])}
    assert classifier <= head
    # depth order: the stem feeds the first block, blocks are numbered in order
    order = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    firsts = [min(order[p] for p in params) for _, params in stages[:-1]]
    assert firsts == sorted(firsts)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_freeze_depth_freezes_exactly_the_first_stages(name):
    model = _model(name)
    for depth in range(num_depth_groups(model)):
        freeze_groups(model, depth)
        frozen = _frozen_names(model, depth)
        for param_name, param in model.named_parameters():
            assert param.requires_grad == (param_name not in frozen), (depth, param_name)
    # full fine-tuning leaves everything trainable again (freeze_groups is idempotent)
    freeze_groups(model, 0)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_linear_probe_trains_only_the_head(name):
    model = _model(name)
    probe = num_depth_groups(model) - 1
    freeze_groups(model, probe)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(depth_groups(model)[-1][1])
    assert validate_model(name, freeze_depth=probe, **ARCHS[name]) == probe + 1


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_optimizer_step_changes_only_unfrozen_parameters(name):
    model = _model(name)
    depth = num_depth_groups(model) // 2
    frozen_modules = freeze_groups(model, depth)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    keep_frozen_in_eval(frozen_modules)
    images, labels = _batch()
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    frozen = _frozen_names(model, depth)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert not changed & frozen
    for stage, params in depth_groups(model)[depth:]:
        assert changed & set(params), f"no parameter of trainable stage {stage} changed"


@pytest.mark.parametrize("name", BN_ARCHS)
def test_frozen_batchnorm_statistics_stay_fixed_in_train_mode(name):
    model = _model(name)
    depth = num_depth_groups(model) // 2
    modules = freeze_groups(model, depth)
    frozen = _frozen_names(model, depth)
    norms = _running_stat_modules(model)
    frozen_norms = {n for n, m in norms.items() if f"{n}.weight" in frozen}
    assert frozen_norms and {id(norms[n]) for n in frozen_norms} == {id(m) for m in modules}
    before = {n: m.running_mean.clone() for n, m in norms.items()}
    model.train()
    keep_frozen_in_eval(modules)
    with torch.no_grad():
        model(_batch()[0])
    for norm_name, module in norms.items():
        moved = not torch.equal(module.running_mean, before[norm_name])
        assert moved == (norm_name not in frozen_norms), norm_name
    # without keep_frozen_in_eval, requires_grad=False alone lets train mode move them
    model.train()
    with torch.no_grad():
        model(_batch(seed=2)[0])
    assert any(not torch.equal(norms[n].running_mean, before[n]) for n in frozen_norms)


def test_freeze_depth_out_of_range_is_one_line():
    model = _model("test_resnet")
    expected = (
        "freeze_depth 7 is out of range for test_resnet, which has 6 depth "
        "groups "
        "(stem, layer1..layer4, head); valid: 0..5"
    )
    with pytest.raises(ConfigError) as err:
        freeze_groups(model, 7)
    assert str(err.value) == expected
    with pytest.raises(ConfigError) as err:
        validate_model("test_resnet", freeze_depth=7)
    assert str(err.value) == expected
    with pytest.raises(ConfigError, match=r"freeze_depth -1 .* valid: 0\.\.5$"):
        freeze_groups(model, -1)
    with pytest.raises(
        ConfigError, match=r"which has 8 depth groups \(stem, blocks\.0\.\.blocks\.5"
    ):
        validate_model("test_vit", freeze_depth=8)
