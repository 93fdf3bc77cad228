"""Procedural datasets (shapes, gratings) and digits: deterministic, balanced, non-trivial."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from transferlab.data import build_splits
from transferlab.data.builtin import GRATING_FREQUENCY_BANDS, SHAPE_CLASSES, gratings, shapes
from transferlab.data.registry import BaseData


def test_digits_is_the_bundled_sklearn_set_resized() -> None:
    from sklearn.datasets import load_digits

    splits = build_splits({"name": "digits"}, image_size=8, channels=1)
    images = torch.cat([splits.train.images, splits.val.images, splits.test.images])
    origin = torch.cat([splits.train.origin, splits.val.origin, splits.test.origin])
    raw = torch.as_tensor(load_digits().images)[origin]
    assert torch.equal(images[:, 0], (raw * 255 / 16).round().to(torch.uint8))
    big = build_splits({"name": "digits"}, image_size=32, channels=3)
    assert big.train.images.shape[1:] == (3, 32, 32)
    assert torch.equal(big.train.images[:, 0], big.train.images[:, 2])


@pytest.mark.parametrize("loader", [shapes, gratings])
def test_procedural_sets_are_deterministic_in_the_data_seed(
    loader: Callable[..., BaseData],
) -> None:
    a = loader(image_size=16, channels=1, num_samples=64, data_seed=3)
    b = loader(image_size=16, channels=1, num_samples=64, data_seed=3)
    c = loader(image_size=16, channels=1, num_samples=64, data_seed=4)
    assert torch.equal(a.train_images, b.train_images)
    assert torch.equal(a.train_labels, b.train_labels)
    assert not torch.equal(a.train_images, c.train_images)
    assert a.train_images.shape == (64, 1, 16, 16) and a.test_images is None


def test_shapes_are_balanced_and_varied() -> None:
    data = shapes(image_size=16, channels=1, num_samples=400, data_seed=0)
    assert data.classes == SHAPE_CLASSES
    counts = torch.bincount(data.train_labels, minlength=len(SHAPE_CLASSES))
    assert int(counts.max() - counts.min()) <= 1
    images = data.train_images.float()
    circles = images[data.train_labels == SHAPE_CLASSES.index("circle")]
    # position, size and intensity vary: no two circles alike, brightness spread out
    assert float(circles.std(dim=0).mean()) > 10
    assert len({round(float(m)) for m in circles.mean(dim=(1, 2, 3))}) > 10
    # the shape itself matters: class-mean images differ between classes
    means = torch.stack([images[data.train_labels == k].mean(0) for k in range(8)])
    assert float(torch.cdist(means.flatten(1), means.flatten(1)).fill_diagonal_(1e9).min()) > 10


def _dominant_wave(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orientation (degrees mod 180, x right / y up) and cycles per image of the FFT peak."""
    x = images[:, 0].float()
    spectrum = torch.fft.fft2(x - x.mean(dim=(1, 2), keepdim=True)).abs()
    size = x.shape[-1]
    freqs = torch.fft.fftfreq(size) * size
    flat = spectrum.flatten(1).argmax(dim=1)
    ky, kx = freqs[flat // size], freqs[flat % size]
    angle = torch.rad2deg(torch.atan2(-ky, kx)) % 180
    return angle, torch.hypot(kx, ky)


def test_grating_classes_are_orientation_bins() -> None:
    data = gratings(image_size=32, channels=1, num_samples=400, data_seed=0)
    angle, _ = _dominant_wave(data.train_images)
    target = data.train_labels.float() * 22.5
    error = (angle - target).abs()
    error = torch.minimum(error, 180 - error)
    # 32-px FFT bins are coarse for low frequencies, so allow 15 degrees (bins are 22.5 apart)
    assert float((error <= 15).float().mean()) > 0.8
    assert data.classes[0] == "0deg" and len(data.classes) == 8


def test_grating_classes_can_be_frequency_bands() -> None:
    data = gratings(image_size=32, channels=1, num_samples=400, data_seed=0, label_by="frequency")
    _, cycles = _dominant_wave(data.train_images)
    lo = torch.tensor([b[0] for b in GRATING_FREQUENCY_BANDS])[data.train_labels]
    hi = torch.tensor([b[1] for b in GRATING_FREQUENCY_BANDS])[data.train_labels]
    assert float(((cycles >= lo - 1) & (cycles <= hi + 1)).float().mean()) > 0.9
    assert len(data.classes) == len(GRATING_FREQUENCY_BANDS)


def test_procedural_spec_sets_the_sample_count_and_is_split_like_any_dataset() -> None:
    splits = build_splits({"name": "shapes", "num_samples": 240}, image_size=12, channels=1)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 240
    assert len(splits.test) == pytest.approx(0.2 * 240, abs=len(SHAPE_CLASSES))
    assert splits.classes == SHAPE_CLASSES and splits.image_size == 12
    assert math.isclose(len(splits.val) / (len(splits.train) + len(splits.val)), 0.2, abs_tol=0.03)
