"""Model factory: names, image size, presets, validation and feature extraction."""

from __future__ import annotations

import pytest
import torch
import yaml
from conftest import CONF_DIR

from transferlab.errors import ConfigError
from transferlab.models import (
    INIT_CHOICES,
    create_model,
    extract_features,
    freeze_groups,
    keep_frozen_in_eval,
    num_depth_groups,
    validate_model,
)

PRESETS = sorted((CONF_DIR / "model").glob("*.yaml"))


def test_unknown_model_lists_close_matches_on_one_line():
    with pytest.raises(ConfigError) as err:
        validate_model("tset_resnet")
    message = str(err.value)
    assert "'tset_resnet'" in message and "test_resnet" in message
    assert "timm.list_models()" in message and "\n" not in message
    with pytest.raises(ConfigError, match="'resnet_nope'.*timm.list_models"):
        create_model("resnet_nope", num_classes=2, in_chans=3, image_size=16)
    with pytest.raises(ConfigError, match="unknown pretrained tag 'bogus' for resnet18"):
        validate_model("resnet18.bogus")


def test_unknown_init_and_bad_kwargs_are_config_errors():
    assert INIT_CHOICES == ("scratch", "source", "hub", "file", "previous")
    with pytest.raises(ConfigError, match="unknown init 'magic'; valid choices: file, hub"):
        validate_model("test_resnet", init="magic")
    with pytest.raises(ConfigError, match="cannot build test_resnet .*'wings'"):
        create_model("test_resnet", num_classes=2, in_chans=3, image_size=16, wings=2)
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 0"):
        create_model("test_resnet", num_classes=-1, in_chans=3, image_size=16)
    with pytest.raises(ConfigError, match="in_chans must be an integer >= 1"):
        create_model("test_resnet", num_classes=2, in_chans=0, image_size=16)
    with pytest.raises(ConfigError, match="init=source needs init_path"):
        create_model("test_resnet", num_classes=2, in_chans=3, image_size=16, init="source")


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
@pytest.mark.parametrize("size", [16, 32])
def test_presets_build_and_run_at_small_sizes(preset, size):
    spec = yaml.safe_load(preset.read_text())
    assert set(spec) == {"name", "kwargs"}
    kwargs = spec["kwargs"] or {}
    model, info = create_model(spec["name"], num_classes=7, in_chans=1, image_size=size, **kwargs)
    assert info["init"] == "scratch" and info["head_reset"] is None
    assert (
        info["num_depth_groups"]
        == num_depth_groups(model)
        == validate_model(spec["name"], **kwargs)
    )
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 1, size, size)).shape == (2, 7)


def test_image_size_reaches_only_models_that_take_it():
    vit, info = create_model("test_vit", num_classes=3, in_chans=3, image_size=16, patch_size=4)
    assert info["img_size_passed"] is True
    assert vit.patch_embed.grid_size == (4, 4)
    _, info = create_model("test_resnet", num_classes=3, in_chans=3, image_size=16)
    assert info["img_size_passed"] is False


def test_extract_features_shapes_and_modes():
    model, _ = create_model("test_resnet", num_classes=4, in_chans=3, image_size=16)
    frozen = freeze_groups(model, 2)
    model.train()
    keep_frozen_in_eval(frozen)
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    feats = extract_features(model, images, batch_size=4)
    assert feats.shape == (10, model.num_features) and feats.dtype == torch.float32
    assert feats.device.type == "cpu"
    assert model.training and all(not m.training for m in frozen), "modes not restored"
    whole = extract_features(model, images)
    assert torch.allclose(feats, whole, atol=1e-5), "batching or train-mode leaked into features"
    with torch.no_grad():
        expected = model.eval().forward_head(
            model.forward_features(images.float() / 255), pre_logits=True
        )
    assert torch.allclose(feats, expected, atol=1e-5)
    assert extract_features(model, images[:0]).shape == (0, model.num_features)
