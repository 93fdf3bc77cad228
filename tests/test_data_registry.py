"""Dataset/shift registry, spec validation, descriptions and the Hydra presets in conf/data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import CONF_DIR
from omegaconf import OmegaConf

from transferlab.data import (
    DatasetSplits,
    ImageTensors,
    available_datasets,
    available_shifts,
    build_splits,
    describe,
    normalize_spec,
    register_dataset,
    registry,
    validate_spec,
)
from transferlab.data.registry import BaseData, get_dataset
from transferlab.errors import ConfigError

PRESETS = CONF_DIR / "data"

BUILTIN = {"digits", "shapes", "gratings"}
TORCHVISION = {"mnist", "fashion_mnist", "kmnist", "usps", "svhn", "cifar10", "cifar100"}
SHIFTS = {
    "rotate", "invert", "tint", "noise", "blur", "contrast", "affine", "pixel_permutation",
    "class_subset", "label_permutation", "label_noise",
}  # fmt: skip


def test_registry_lists_every_dataset_and_shift() -> None:
    assert set(available_datasets()) >= BUILTIN | TORCHVISION | {"image_folder"}
    assert available_datasets() == sorted(available_datasets())
    assert set(available_shifts()) >= SHIFTS


def test_unknown_dataset_names_the_value_and_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        validate_spec({"name": "digitz"})
    msg = str(err.value)
    assert "'digitz'" in msg and "\n" not in msg
    assert all(name in msg for name in available_datasets())


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ({"name": "digits", "shifts": [{"name": "rotat"}]}, ["'rotat'", "rotate", "invert"]),
        (
            {"name": "digits", "shifts": [{"name": "rotate", "deg": 4}]},
            ["'deg'", "rotate", "degrees"],
        ),
        ({"name": "digits", "shifts": [{"name": "rotate"}]}, ["rotate", "degrees"]),
        ({"name": "digits", "colour": 1}, ["'colour'", "val_fraction", "test_fraction"]),
        ({"name": "mnist", "test_fraction": 0.1}, ["'test_fraction'", "root", "download"]),
        ({"name": "digits", "val_fraction": 1.5}, ["val_fraction", "1.5"]),
        ({"name": "shapes", "num_samples": 0}, ["num_samples", "0"]),
        ({"name": "gratings", "label_by": "colour"}, ["'colour'", "orientation", "frequency"]),
        ({"name": "digits", "shifts": [{"name": "label_noise", "fraction": 2}]}, ["fraction"]),
        ({"name": "digits", "shifts": [{"name": "tint", "color": [1, 0]}]}, ["color"]),
        ({"name": "digits", "shifts": [{"name": "class_subset", "classes": []}]}, ["classes"]),
        ({"name": "image_folder"}, ["image_folder", "root"]),
        ({"shifts": []}, ["name"]),
    ],
)
def test_validate_spec_rejects_bad_specs_in_one_line(spec: dict, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        validate_spec(spec)
    msg = str(err.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg


def test_normalize_fills_defaults_so_equivalent_specs_agree() -> None:
    plain = normalize_spec({"name": "digits"})
    explicit = normalize_spec({"name": "digits", "shifts": [], "val_fraction": 0.2})
    assert plain == explicit
    assert plain["shifts"] == [] and plain["test_fraction"] == 0.2
    rot = normalize_spec({"name": "digits", "shifts": [{"name": "rotate", "degrees": 45}]})
    assert rot["shifts"] == [{"name": "rotate", "degrees": 45, "interpolation": "bilinear"}]


def test_describe_is_canonical_and_shows_only_non_defaults() -> None:
    assert describe({"name": "digits"}) == "digits"
    rot = {"name": "digits", "shifts": [{"name": "rotate", "degrees": 45.0}]}
    assert describe(rot) == "digits+rotate(degrees=45)"
    spec = {
        "name": "shapes",
        "num_samples": 500,
        "shifts": [
            {"name": "label_noise", "fraction": 0.5, "seed": 0},
            {"name": "class_subset", "classes": [1, 2]},
            {"name": "invert"},
        ],
    }
    expected = (
        "shapes(num_samples=500)+label_noise(fraction=0.5)+class_subset(classes=[1,2])+invert"
    )
    assert describe(spec) == expected
    # where the data lives is not what the data is
    assert describe({"name": "mnist", "root": "/somewhere", "download": True}) == "mnist"


def test_dictconfig_specs_are_accepted() -> None:
    cfg = OmegaConf.create({"name": "digits", "shifts": [{"name": "rotate", "degrees": 45}]})
    assert describe(cfg) == "digits+rotate(degrees=45)"
    splits = build_splits(cfg, image_size=8, channels=1)
    assert splits.description == "digits+rotate(degrees=45)"


def test_register_dataset_adds_a_loadable_dataset_with_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a private copy of the registry, so the test dataset does not outlive this test
    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))
    name = "test_tiny_constant"

    @register_dataset(name)
    def tiny(*, image_size: int, channels: int, value: int = 7) -> BaseData:
        images = torch.full((20, channels, image_size, image_size), value, dtype=torch.uint8)
        return BaseData(images, torch.arange(20) % 2, ("even", "odd"))

    assert name in available_datasets()
    assert get_dataset(name).options == {"value": 7}
    splits = build_splits({"name": name, "value": 9}, image_size=4, channels=1)
    assert isinstance(splits, DatasetSplits) and isinstance(splits.train, ImageTensors)
    assert splits.classes == ("even", "odd")
    assert len(splits.train) + len(splits.val) + len(splits.test) == 20
    assert bool((splits.train.images == 9).all())
    assert describe({"name": name, "value": 9}) == f"{name}(value=9)"
    with pytest.raises(ValueError):
        register_dataset(name)(tiny)


PRESET_NAMES = sorted(p.stem for p in PRESETS.glob("*.yaml"))


def test_expected_presets_exist() -> None:
    expected = {
        "digits", "shapes", "gratings", "digits_rot45", "digits_inverted",
        "digits_label_permuted", "digits_pixel_permuted", "digits_label_noise", "digits_noise",
        "digits_04", "digits_59", "digits_affine", "mnist", "fashion_mnist", "kmnist", "usps",
        "svhn", "cifar10", "cifar100", "image_folder",
    }  # fmt: skip
    assert expected <= set(PRESET_NAMES)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_every_preset_is_a_valid_spec(preset: str, tmp_path: Path) -> None:
    """Each preset, mounted as the main config would (data@source), validates."""
    cfg = OmegaConf.create({"paths": {"data": str(tmp_path)}})
    cfg.source = OmegaConf.load(PRESETS / f"{preset}.yaml")
    if preset == "image_folder":  # root is mandatory (???) until the user sets it
        with pytest.raises(ConfigError, match="root"):
            validate_spec(cfg.source)
        cfg.source.root = str(tmp_path)
    validate_spec(cfg.source)
    assert describe(cfg.source).startswith(str(cfg.source.name))


def test_shifted_presets_describe_their_shift() -> None:
    def load(name: str) -> str:
        return describe(OmegaConf.load(PRESETS / f"{name}.yaml"))

    assert load("digits_rot45") == "digits+rotate(degrees=45)"
    assert load("digits_affine") == "digits+affine(offset=0.3,scale=0.4)"
    assert load("digits_59") == "digits+class_subset(classes=[5,6,7,8,9])"
