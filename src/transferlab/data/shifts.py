"""Domain shifts: named, parameterised transformations of a dataset view, applied per split.

Two kinds, by what they act on:

* an **image shift** is ``fn(images, origin, **params) -> images``: uint8 (N, C, H, W) images
  and each one's index in its base dataset in, the shifted images out, each image on its own
  (the same image gives the same result in any batch). So it applies alike to a split held in
  memory (chunk by chunk) and to one streamed from disk (per example, in a DataLoader worker:
  `data/streaming.py`);
* a **label shift** is ``fn(view, **params) -> view``: it relabels or selects examples, and
  never reads a pixel.

The keyword-only parameters of either (with their defaults) are the parameters a spec may give.
Randomised shifts take ``seed`` (default 0); a shift that must act alike on every split (a
permutation) draws from ``seed`` alone, per-example noise from ``seed`` and the example's
origin (the same example is shifted alike in every split, pool part and path), label noise from
``seed`` and the split name, so every result is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms import InterpolationMode

from transferlab.data import checks
from transferlab.data.image_ops import generator, to_float, to_uint8
from transferlab.data.registry import keyword_options
from transferlab.errors import ConfigError, choice_error

#: Seed of randomised shifts unless the spec sets ``seed``.
DEFAULT_SHIFT_SEED = 0
#: Gaussian blur kernels extend this many sigmas either side of the centre.
BLUR_KERNEL_SIGMAS = 3
INTERPOLATIONS = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR}
#: What a shift acts on: each image by itself, or the labels (and which examples are kept).
SHIFT_KINDS = ("image", "label")


@dataclass(frozen=True)
class View:
    """What a shift acts on: one split's examples (`ImageTensors` in memory, or an
    `ImageStream` read from disk), the class names, and the split's name."""

    data: Any
    classes: tuple[str, ...]
    split: str

    def with_labels(self, labels: torch.Tensor) -> View:
        """The same view with new labels."""
        return replace(self, data=replace(self.data, labels=labels))


ShiftFn = Callable[..., Any]
ParamCheck = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class ShiftEntry:
    """A registered shift: its function, its parameters with defaults, and a value check."""

    name: str
    fn: ShiftFn
    params: dict[str, Any]
    check: ParamCheck | None
    kind: str = "image"


_SHIFTS: dict[str, ShiftEntry] = {}


def register_shift(
    name: str, *, check: ParamCheck | None = None, kind: str = "image"
) -> Callable[[ShiftFn], ShiftFn]:
    """Register shift ``name``: ``fn(images, origin, **params) -> images`` (``kind="image"``) or
    ``fn(view, **params) -> View`` (``kind="label"``); ``check(where, params)`` validates
    parameter values cheaply (ConfigError) before any loading."""
    if kind not in SHIFT_KINDS:
        raise ValueError(f"shift kind must be one of {SHIFT_KINDS}, got {kind!r}")

    def decorator(fn: ShiftFn) -> ShiftFn:
        if name in _SHIFTS:
            raise ValueError(f"shift {name!r} is already registered")
        _SHIFTS[name] = ShiftEntry(name, fn, keyword_options(fn, ()), check, kind)
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
    """Apply the registered shift ``name`` with complete, validated ``params``: a label shift
    to the view, an image shift to each image (`map_images`: now in memory, or when a streamed
    example is read)."""
    entry = get_shift(name)
    if entry.kind == "label":
        return entry.fn(view, **params)
    return replace(view, data=view.data.map_images(partial(entry.fn, **params)))


def _float_map(images: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``fn`` to the images as floats in [0, 1], back to uint8."""
    return to_uint8(fn(to_float(images)))


def _seeded(where: str, p: Mapping[str, Any]) -> None:
    checks.integer(where, "seed", p["seed"])


# --- pixel-level shifts -------------------------------------------------------------------


def _check_rotate(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "degrees", p["degrees"])
    checks.choice(where, "interpolation", p["interpolation"], INTERPOLATIONS)


@register_shift("rotate", check=_check_rotate)
def rotate(
    images: torch.Tensor, origin: torch.Tensor, *, degrees: float, interpolation: str = "bilinear"
) -> torch.Tensor:
    """Rotate every image counter-clockwise by ``degrees`` about its centre (corners filled 0)."""
    return F.rotate(images, float(degrees), INTERPOLATIONS[interpolation], fill=0)


@register_shift("invert")
def invert(images: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """Photographic negative: x -> 255 - x."""
    return 255 - images


def _check_tint(where: str, p: Mapping[str, Any]) -> None:
    color = p["color"]
    if not isinstance(color, (list, tuple)) or len(color) != 3:
        raise ConfigError(f"{where}: color must be a list of 3 numbers (r, g, b), got {color!r}")
    for c in color:
        checks.number(where, "color", c, low=0.0)


@register_shift("tint", check=_check_tint)
def tint(images: torch.Tensor, origin: torch.Tensor, *, color: list[float]) -> torch.Tensor:
    """Multiply the red, green, blue channels by ``color`` (needs channels=3)."""
    if images.shape[1] != 3:
        raise ConfigError("shift tint needs 3-channel images; set channels=3")
    scale = torch.tensor(color, dtype=torch.float32).view(1, 3, 1, 1)
    return _float_map(images, lambda x: x * scale)


def _check_noise(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "std", p["std"], low=0.0)
    _seeded(where, p)


@register_shift("noise", check=_check_noise)
def noise(
    images: torch.Tensor, origin: torch.Tensor, *, std: float, seed: int = DEFAULT_SHIFT_SEED
) -> torch.Tensor:
    """Add gaussian noise of standard deviation ``std`` (intensities in [0, 1]), then clamp;
    each example's noise is drawn from ``seed`` and its origin alone."""
    shape = images.shape[1:]
    draws = [torch.randn(shape, generator=generator("noise", seed, int(o))) for o in origin]
    noise = torch.stack(draws) if draws else torch.zeros(images.shape)
    return _float_map(images, lambda x: x + std * noise)


def _check_blur(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "sigma", p["sigma"], low=0.0, low_open=True)


@register_shift("blur", check=_check_blur)
def blur(images: torch.Tensor, origin: torch.Tensor, *, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels."""
    size = 2 * math.ceil(BLUR_KERNEL_SIGMAS * sigma) + 1
    return F.gaussian_blur(images, kernel_size=[size, size], sigma=[sigma, sigma])


def _check_contrast(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "factor", p["factor"], low=0.0)


@register_shift("contrast", check=_check_contrast)
def contrast(images: torch.Tensor, origin: torch.Tensor, *, factor: float) -> torch.Tensor:
    """Scale contrast about each image's mean gray level (0 = flat gray, 1 = unchanged)."""
    return F.adjust_contrast(images, float(factor))


def _check_affine(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "offset", p["offset"])
    checks.number(where, "scale", p["scale"])


@register_shift("affine", check=_check_affine)
def affine(
    images: torch.Tensor, origin: torch.Tensor, *, offset: float, scale: float
) -> torch.Tensor:
    """Affine intensity map x -> offset + scale * x on [0, 1] intensities, clamped."""
    return _float_map(images, lambda x: offset + scale * x)


@register_shift("pixel_permutation", check=_seeded)
def pixel_permutation(
    images: torch.Tensor, origin: torch.Tensor, *, seed: int = DEFAULT_SHIFT_SEED
) -> torch.Tensor:
    """Permute pixel positions by one fixed random permutation (same for all images, splits)."""
    n, c, h, w = images.shape
    perm = torch.randperm(h * w, generator=generator("pixel_permutation", seed, h, w))
    return images.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w)


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


@register_shift("class_subset", check=_check_class_subset, kind="label")
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


@register_shift("label_permutation", check=_seeded, kind="label")
def label_permutation(view: View, *, seed: int = DEFAULT_SHIFT_SEED) -> View:
    """Relabel by one fixed random permutation of the classes (same on every split); class
    names stay in place, so name i now labels the examples of old class perm^-1(i)."""
    k = len(view.classes)
    perm = torch.randperm(k, generator=generator("label_permutation", seed, k))
    return view.with_labels(perm[view.data.labels])


def _check_label_noise(where: str, p: Mapping[str, Any]) -> None:
    checks.number(where, "fraction", p["fraction"], low=0.0, high=1.0)
    _seeded(where, p)


@register_shift("label_noise", check=_check_label_noise, kind="label")
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
