"""Domain shifts: named, parameterised transformations of a dataset view, applied per split.

Each shift is ``fn(view, **params) -> view``. Its keyword-only parameters (with their defaults)
are the parameters a spec may give. Randomised shifts take ``seed`` (default 0); a shift that
must act alike on every split (a permutation) draws from ``seed`` alone, per-example noise from
``seed`` and the split name, so every result is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms import InterpolationMode

from transferlab.data import checks
from transferlab.data.image_ops import generator, map_chunks, to_float, to_uint8
from transferlab.data.registry import keyword_options
from transferlab.data.tensors import ImageTensors
from transferlab.errors import ConfigError, choice_error

#: Seed of randomised shifts unless the spec sets ``seed``.
DEFAULT_SHIFT_SEED = 0
#: Gaussian blur kernels extend this many sigmas either side of the centre.
BLUR_KERNEL_SIGMAS = 3
INTERPOLATIONS = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR}


@dataclass(frozen=True)
class View:
    """What a shift acts on: one split's examples, the class names, and the split's name."""

    data: ImageTensors
    classes: tuple[str, ...]
    split: str

    def with_images(self, images: torch.Tensor) -> View:
        """The same view with new images."""
        return replace(self, data=replace(self.data, images=images))

    def with_labels(self, labels: torch.Tensor) -> View:
        """The same view with new labels."""
        return replace(self, data=replace(self.data, labels=labels))


ShiftFn = Callable[..., View]
ParamCheck = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class ShiftEntry:
    """A registered shift: its function, its parameters with defaults, and a value check."""

    name: str
    fn: ShiftFn
    params: dict[str, Any]
    check: ParamCheck | None


_SHIFTS: dict[str, ShiftEntry] = {}


def register_shift(name: str, *, check: ParamCheck | None = None) -> Callable[[ShiftFn], ShiftFn]:
    """Register ``fn(view, **params) -> View`` as shift ``name``; ``check(where, params)`` validates
    parameter values cheaply (ConfigError) before any loading."""

    def decorator(fn: ShiftFn) -> ShiftFn:
        if name in _SHIFTS:
            raise ValueError(f"shift {name!r} is already registered")
        _SHIFTS[name] = ShiftEntry(name, fn, keyword_options(fn, ()), check)
        return fn

    return decorator


def available_shifts() -> list[str]:
    """Names of all registered shifts, sorted."""
    return sorted(_SHIFTS)


def get_shift(name: object) -> ShiftEntry:
    """The registry entry for shift ``name``; ConfigError naming the valid choices if unknown."""
    if not isinstance(name, str) or name not in _SHIFTS:
        raise choice_error("shift", name, _SHIFTS)
    return _SHIFTS[name]


def apply_shift(view: View, name: str, params: Mapping[str, Any]) -> View:
    """Apply the registered shift ``name`` with complete, validated ``params``."""
    return get_shift(name).fn(view, **params)


def _float_map(view: View, fn: Callable[[torch.Tensor], torch.Tensor]) -> View:
    """Apply ``fn`` to the images as floats in [0, 1], chunked, back to uint8."""
    return view.with_images(map_chunks(view.data.images, lambda x: to_uint8(fn(to_float(x)))))


def _seeded(where: str, p: Mapping[str, Any]) -> None:
    checks.integer(where, "seed", p["seed"])


# --- pixel-level shifts -------------------------------------------------------------------


def _check_rotate(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "degrees", p["degrees"])
    checks.choice(where, "interpolation", p["interpolation"], INTERPOLATIONS)


@register_shift("rotate", check=_check_rotate)
def rotate(view: View, *, degrees: float, interpolation: str = "bilinear") -> View:
    """Rotate every image counter-clockwise by ``degrees`` about its centre (corners filled 0)."""
    mode = INTERPOLATIONS[interpolation]
    return view.with_images(
        map_chunks(view.data.images, lambda x: F.rotate(x, float(degrees), mode, fill=0))
    )


@register_shift("invert")
def invert(view: View) -> View:
    """Photographic negative: x -> 255 - x."""
    return view.with_images(255 - view.data.images)


def _check_tint(where: str, p: Mapping[str, Any]) -> None:
    color = p["color"]
    if not isinstance(color, (list, tuple)) or len(color) != 3:
        raise ConfigError(f"{where}: color must be a list of 3 numbers (r, g, b), got {color!r}")
    for c in color:
        checks.number(where, "color", c, low=0.0)


@register_shift("tint", check=_check_tint)
def tint(view: View, *, color: list[float]) -> View:
    """Multiply the red, green, blue channels by ``color`` (needs channels=3)."""
    if view.data.images.shape[1] != 3:
        raise ConfigError("shift tint needs 3-channel images; set channels=3")
    scale = torch.tensor(color, dtype=torch.float32).view(1, 3, 1, 1)
    return _float_map(view, lambda x: x * scale)


def _check_noise(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "std", p["std"], low=0.0)
    _seeded(where, p)


@register_shift("noise", check=_check_noise)
def noise(view: View, *, std: float, seed: int = DEFAULT_SHIFT_SEED) -> View:
    """Add gaussian noise of standard deviation ``std`` (intensities in [0, 1]), then clamp."""
    gen = generator("noise", seed, view.split)
    return _float_map(view, lambda x: x + std * torch.randn(x.shape, generator=gen))


def _check_blur(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "sigma", p["sigma"], low=0.0, low_open=True)


@register_shift("blur", check=_check_blur)
def blur(view: View, *, sigma: float) -> View:
    """Gaussian blur with standard deviation ``sigma`` pixels."""
    size = 2 * math.ceil(BLUR_KERNEL_SIGMAS * sigma) + 1
    return view.with_images(
        map_chunks(
            view.data.images,
            lambda x: F.gaussian_blur(x, kernel_size=[size, size], sigma=[sigma, sigma]),
        )
    )


def _check_contrast(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "factor", p["factor"], low=0.0)


@register_shift("contrast", check=_check_contrast)
def contrast(view: View, *, factor: float) -> View:
    """Scale contrast about each image's mean gray level (0 = flat gray, 1 = unchanged)."""
    return view.with_images(
        map_chunks(view.data.images, lambda x: F.adjust_contrast(x, float(factor)))
    )


def _check_affine(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "offset", p["offset"])
    checks.number(where, "scale", p["scale"])


@register_shift("affine", check=_check_affine)
def affine(view: View, *, offset: float, scale: float) -> View:
    """Affine intensity map x -> offset + scale * x on [0, 1] intensities, clamped."""
    return _float_map(view, lambda x: offset + scale * x)


@register_shift("pixel_permutation", check=_seeded)
def pixel_permutation(view: View, *, seed: int = DEFAULT_SHIFT_SEED) -> View:
    """Permute pixel positions by one fixed random permutation (same for all images, splits)."""
    images = view.data.images
    n, c, h, w = images.shape
    perm = torch.randperm(h * w, generator=generator("pixel_permutation", seed, h, w))
    return view.with_images(images.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w))


# --- label-level shifts -------------------------------------------------------------------


def _check_class_subset(where: str, p: Mapping[str, Any]) -> None:
    classes = p["classes"]
    if not isinstance(classes, (list, tuple)) or not classes:
        raise ConfigError(f"{where}: classes must be a non-empty list, got {classes!r}")
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, (int, str)):
            raise ConfigError(f"{where}: classes must be class indices or names, got {c!r}")
    if len(set(classes)) != len(classes):
        raise ConfigError(f"{where}: classes has duplicates: {classes!r}")


@register_shift("class_subset", check=_check_class_subset)
def class_subset(view: View, *, classes: list[int | str]) -> View:
    """Keep only the listed classes (indices or names), relabelled 0..k-1 in the listed order."""
    names = view.classes
    keep: list[int] = []
    for c in classes:
        if isinstance(c, str) and c in names:
            keep.append(names.index(c))
        elif isinstance(c, int) and 0 <= c < len(names):
            keep.append(c)
        else:
            raise choice_error("class for class_subset", c, [*range(len(names)), *names])
    if len(set(keep)) != len(keep):
        raise ConfigError(f"class_subset lists a class twice: {list(classes)!r}")
    mapping = torch.full((len(names),), -1, dtype=torch.long)
    mapping[torch.tensor(keep)] = torch.arange(len(keep))
    new_labels = mapping[view.data.labels]
    sub = view.data.subset(torch.nonzero(new_labels >= 0).flatten())
    data = replace(sub, labels=mapping[sub.labels])
    return View(data, tuple(names[k] for k in keep), view.split)


@register_shift("label_permutation", check=_seeded)
def label_permutation(view: View, *, seed: int = DEFAULT_SHIFT_SEED) -> View:
    """Relabel by one fixed random permutation of the classes (same on every split); class
    names stay in place, so name i now labels the examples of old class perm^-1(i)."""
    k = len(view.classes)
    perm = torch.randperm(k, generator=generator("label_permutation", seed, k))
    return view.with_labels(perm[view.data.labels])


def _check_label_noise(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "fraction", p["fraction"], low=0.0, high=1.0)
    _seeded(where, p)


@register_shift("label_noise", check=_check_label_noise)
def label_noise(view: View, *, fraction: float, seed: int = DEFAULT_SHIFT_SEED) -> View:
    """Replace each label, with probability ``fraction``, by a uniformly drawn different class
    (applies to every split, so a noisy source is also evaluated on noisy labels)."""
    k = len(view.classes)
    labels = view.data.labels
    if k < 2:
        return view
    gen = generator("label_noise", seed, view.split)
    flip = torch.rand(labels.shape, generator=gen) < fraction
    step = torch.randint(1, k, labels.shape, generator=gen)
    return view.with_labels(torch.where(flip, (labels + step) % k, labels))
