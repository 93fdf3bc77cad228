"""Every domain shift does what it says, deterministically, composed in the listed order."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as F

from transferlab.data import DatasetSplits, build_splits, clear_cache
from transferlab.data.image_ops import PIXEL_MAX
from transferlab.data.shifts import View, apply_shift
from transferlab.data.tensors import ImageTensors
from transferlab.errors import ConfigError

SIZE = 16
SPLITS = ("train", "val", "test")


def digits(*shifts: dict, channels: int = 1) -> DatasetSplits:
    return build_splits(
        {"name": "digits", "shifts": list(shifts)}, image_size=SIZE, channels=channels
    )


def base_labels_by_origin(base: DatasetSplits) -> dict[int, int]:
    out: dict[int, int] = {}
    for split in SPLITS:
        part = getattr(base, split)
        out.update(zip(part.origin.tolist(), part.labels.tolist(), strict=True))
    return out


def test_pixel_shifts_keep_examples_labels_and_origins() -> None:
    base = digits()
    for shift in ({"name": "rotate", "degrees": 30}, {"name": "invert"}, {"name": "blur",
                  "sigma": 1.0}, {"name": "noise", "std": 0.1}, {"name": "contrast",
                  "factor": 0.5}, {"name": "affine", "offset": 0.3, "scale": 0.4},
                  {"name": "pixel_permutation"}):  # fmt: skip
        shifted = digits(shift)
        assert shifted.classes == base.classes
        for split in SPLITS:
            a, b = getattr(base, split), getattr(shifted, split)
            assert torch.equal(a.origin, b.origin) and torch.equal(a.labels, b.labels)
            assert b.images.dtype == torch.uint8 and b.images.shape == a.images.shape
            assert not torch.equal(a.images, b.images), shift


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_rotate_90_turns_images_a_quarter_counter_clockwise(interpolation: str) -> None:
    base = digits()
    rotated = digits({"name": "rotate", "degrees": 90, "interpolation": interpolation})
    for split in SPLITS:
        expected = torch.rot90(getattr(base, split).images, 1, dims=(-2, -1))
        assert torch.equal(getattr(rotated, split).images, expected)


def one_image_view(img: torch.Tensor) -> View:
    zero = torch.zeros(1, dtype=torch.long)
    return View(ImageTensors(img, zero, zero), ("a",), "train")


def test_rotate_moves_a_single_pixel_where_geometry_says() -> None:
    img = torch.zeros(1, 1, 9, 9, dtype=torch.uint8)
    img[0, 0, 4, 8] = 200  # right of centre (row 4, col 8)
    view = one_image_view(img)
    out = apply_shift(view, "rotate", {"degrees": 90, "interpolation": "nearest"}).data.images
    assert torch.nonzero(out[0, 0]).tolist() == [[0, 4]]  # now above the centre
    out = apply_shift(view, "rotate", {"degrees": 45, "interpolation": "bilinear"}).data.images
    row, col = divmod(int(out[0, 0].flatten().argmax()), 9)
    assert (row, col) == (1, 7)  # centre + 4 * (cos 45, -sin 45) = (1.2, 6.8)


def test_invert_is_255_minus_x() -> None:
    base, inv = digits(), digits({"name": "invert"})
    for split in SPLITS:
        assert torch.equal(getattr(inv, split).images, 255 - getattr(base, split).images)


def test_tint_scales_each_colour_channel_and_needs_three_channels() -> None:
    color = [1.0, 0.5, 0.0]
    base = digits(channels=3)
    tinted = digits({"name": "tint", "color": color}, channels=3)
    x = base.train.images.float()
    y = tinted.train.images.float()
    assert torch.equal(y[:, 0], x[:, 0])
    assert (y[:, 1] - (x[:, 1] * 0.5)).abs().max() <= 0.5
    assert int(y[:, 2].max()) == 0
    with pytest.raises(ConfigError, match="channels=3"):
        digits({"name": "tint", "color": color}, channels=1)


def test_noise_has_the_requested_std_and_is_seeded() -> None:
    gray = {"name": "affine", "offset": 0.5, "scale": 0.0}  # flat mid-gray: no clamping
    flat = digits(gray).train.images.float()
    noisy = digits(gray, {"name": "noise", "std": 0.1}).train.images.float()
    assert abs(float((noisy - flat).std()) / PIXEL_MAX - 0.1) < 0.005
    again = digits(gray, {"name": "noise", "std": 0.1, "seed": 0})  # seed 0 is the default
    clear_cache()
    rebuilt = digits(gray, {"name": "noise", "std": 0.1})
    assert torch.equal(again.train.images, rebuilt.train.images)
    other = digits(gray, {"name": "noise", "std": 0.1, "seed": 1})
    assert not torch.equal(other.train.images, again.train.images)


def test_blur_matches_a_gaussian_blur_and_smooths() -> None:
    base, blurred = digits(), digits({"name": "blur", "sigma": 1.0})
    expected = F.gaussian_blur(base.train.images, kernel_size=[7, 7], sigma=[1.0, 1.0])
    assert torch.equal(blurred.train.images, expected)

    def roughness(x: torch.Tensor) -> float:
        return float(x.float().diff(dim=-1).abs().mean())

    assert roughness(blurred.train.images) < 0.85 * roughness(base.train.images)
    impulse = torch.zeros(1, 1, 15, 15, dtype=torch.uint8)
    impulse[0, 0, 7, 7] = 255
    spread = apply_shift(one_image_view(impulse), "blur", {"sigma": 1.0}).data.images[0, 0]
    spread = spread.float()
    assert int(spread.flatten().argmax()) == 7 * 15 + 7
    assert torch.equal(spread, spread.flip(0)) and torch.equal(spread, spread.T)
    assert abs(float(spread[7, 8] / spread[7, 7]) - math.exp(-0.5)) < 0.05  # gaussian, sigma 1


def test_contrast_zero_flattens_and_one_keeps() -> None:
    flat = digits({"name": "contrast", "factor": 0.0}).train.images
    per_image = flat.flatten(1)
    assert bool((per_image == per_image[:, :1]).all())
    assert torch.equal(digits({"name": "contrast", "factor": 1.0}).train.images,
                       digits().train.images)  # fmt: skip


def test_affine_maps_x_to_offset_plus_scale_x() -> None:
    base, shifted = digits(), digits({"name": "affine", "offset": 0.3, "scale": 0.4})
    x = base.train.images.float() / PIXEL_MAX
    expected = ((0.3 + 0.4 * x) * PIXEL_MAX).round()
    assert (shifted.train.images.float() - expected).abs().max() <= 1
    assert int(shifted.train.images.min()) in (76, 77)  # 0.3 * 255 = 76.5
    assert int(shifted.train.images.max()) <= 179  # 0.7 * 255 = 178.5


def test_pixel_permutation_is_one_fixed_permutation_for_all_images_and_splits() -> None:
    n, h = 3, 4
    ramp = torch.arange(h * h, dtype=torch.uint8).view(1, 1, h, h).repeat(n, 1, 1, 1)
    tensors = ImageTensors(ramp, torch.zeros(n, dtype=torch.long), torch.arange(n))
    train = apply_shift(View(tensors, ("a",), "train"), "pixel_permutation", {"seed": 3})
    test = apply_shift(View(tensors, ("a",), "test"), "pixel_permutation", {"seed": 3})
    perm = train.data.images[0, 0].flatten()
    assert sorted(perm.tolist()) == list(range(h * h)) and perm.tolist() != list(range(h * h))
    assert bool((train.data.images == train.data.images[:1]).all())
    assert torch.equal(train.data.images, test.data.images)
    base, shuffled = digits(), digits({"name": "pixel_permutation"})
    assert torch.equal(base.test.images.flatten(1).sort().values,
                       shuffled.test.images.flatten(1).sort().values)  # fmt: skip


def test_class_subset_keeps_listed_classes_relabelled_with_names() -> None:
    base = digits()
    labels_of = base_labels_by_origin(base)
    sub = digits({"name": "class_subset", "classes": [5, 6, 7, 8, 9]})
    assert sub.classes == ("5", "6", "7", "8", "9") and sub.num_classes == 5
    for split in SPLITS:
        part, whole = getattr(sub, split), getattr(base, split)
        assert len(part) == int((whole.labels >= 5).sum())
        original = torch.tensor([labels_of[o] for o in part.origin.tolist()])
        assert torch.equal(part.labels, original - 5)
    by_name = digits({"name": "class_subset", "classes": ["7", "3"]})
    assert by_name.classes == ("7", "3")
    original = torch.tensor([labels_of[o] for o in by_name.train.origin.tolist()])
    assert torch.equal(original, torch.tensor([7, 3])[by_name.train.labels])
    with pytest.raises(ConfigError, match="'x'"):
        digits({"name": "class_subset", "classes": ["x"]})


def test_label_permutation_is_one_permutation_consistent_across_splits() -> None:
    base = digits()
    permuted = digits({"name": "label_permutation"})
    assert permuted.classes == base.classes
    mapping: dict[int, int] = {}
    for split in SPLITS:
        a, b = getattr(base, split), getattr(permuted, split)
        assert torch.equal(a.origin, b.origin)
        for old, new in zip(a.labels.tolist(), b.labels.tolist(), strict=True):
            assert mapping.setdefault(old, new) == new  # a function of the old label ...
    assert sorted(mapping.values()) == sorted(mapping) == list(range(10))  # ... and a bijection
    assert any(k != v for k, v in mapping.items())
    other = digits({"name": "label_permutation", "seed": 1})
    assert not torch.equal(other.train.labels, permuted.train.labels)


def test_label_noise_flips_about_the_requested_fraction() -> None:
    base = digits()
    noisy = digits({"name": "label_noise", "fraction": 0.3})
    changed = noisy.train.labels != base.train.labels
    assert abs(float(changed.float().mean()) - 0.3) < 0.05
    assert int(noisy.train.labels.max()) < 10 and int(noisy.train.labels.min()) >= 0
    assert torch.equal(digits({"name": "label_noise", "fraction": 0.0}).train.labels,
                       base.train.labels)  # fmt: skip
    clear_cache()
    assert torch.equal(digits({"name": "label_noise", "fraction": 0.3}).train.labels,
                       noisy.train.labels)  # fmt: skip


def test_shifts_compose_in_the_listed_order() -> None:
    rot = {"name": "rotate", "degrees": 45}
    inv = {"name": "invert"}
    rot_then_inv, inv_then_rot = digits(rot, inv), digits(inv, rot)
    assert torch.equal(rot_then_inv.train.images, 255 - digits(rot).train.images)
    # corners: rotation fills them with 0, so the order decides whether they end up 0 or 255
    assert int(rot_then_inv.train.images[:, :, 0, 0].min()) == 255
    assert int(inv_then_rot.train.images[:, :, 0, 0].max()) == 0
    assert rot_then_inv.description == "digits+rotate(degrees=45)+invert"
