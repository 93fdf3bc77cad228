"""Augmentations: whole batches on tensors, seeded by the run, part of the target identity and
the same for both arms of a cell; a run with one trains and repeats exactly."""

from __future__ import annotations

import pytest
import torch

from transferlab.store import run_id, stage_config
from transferlab.training.augment import FlipCrop, TrivialAugment
from transferlab.training.config_schema import check_run_config
from transferlab.training.run import train


def _batch(n: int = 16, size: int = 8) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0)).to(
        torch.uint8
    )


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("augment", [FlipCrop(), TrivialAugment()], ids=["flip_crop", "trivial"])
def test_augmentation_is_batchwise_and_seeded(augment):
    images = _batch()
    out = augment(images, _gen(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out, augment(images, _gen(1)))  # same seed, same batch
    assert any(not torch.equal(augment(images, _gen(s)), out) for s in range(2, 6))


def test_flip_crop_draws_each_image_on_its_own():
    images = _batch()
    mirrored = FlipCrop(flip=1.0, padding=0)(images, _gen(0))
    assert torch.equal(mirrored, images.flip(-1))
    assert torch.equal(FlipCrop(flip=0.0, padding=0)(images, _gen(0)), images)
    out = FlipCrop(flip=0.0, padding=2)(images, _gen(3))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(images)):  # every output is some 8x8 window of its padded image
        windows = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(padded[i, :, dy : dy + 8, dx : dx + 8], out[i])
        ]
        assert windows
        offsets.add(windows[0])
    assert len(offsets) > 1  # not one offset for the whole batch


def test_augment_preset_is_checked_in_the_target_identity_and_shared_by_both_arms(compose):
    plain, flipped = compose(), compose("augment=flip_crop")
    check_run_config(flipped)
    source = run_id(stage_config(plain, "source"))
    assert source == run_id(stage_config(flipped, "source"))  # sources are not augmented
    assert run_id(stage_config(plain, "target", source)) != run_id(
        stage_config(flipped, "target", source)
    )
    scratch = stage_config(compose("augment=flip_crop", "init=scratch"), "target")
    assert scratch.augment == stage_config(flipped, "target", source).augment


@pytest.mark.parametrize("preset", ["flip_crop", "trivial_augment"])
def test_a_run_with_augmentation_trains_and_repeats_exactly(compose, preset):
    first = train(compose("init=scratch", f"augment={preset}", "train.epochs=1", "study=a"))
    again = train(compose("init=scratch", f"augment={preset}", "train.epochs=1", "study=b"))
    assert first["status"] == again["status"] == "completed"
    assert first["metrics"]["test"]["acc"] == again["metrics"]["test"]["acc"]
    expected = {"flip_crop": "FlipCrop", "trivial_augment": "TrivialAugment"}[preset]
    assert first["config"]["augment"]["_target_"].endswith(expected)
