"""Build any timm model for a dataset (channels, image size, classes) from one of four inits.

Image size: only some architectures take ``img_size`` (ViT-like models with position embeddings
and fixed token grids); CNNs reject it. We first call ``timm.create_model(..., img_size=...)``
and, when the model's constructor raises ``TypeError`` naming ``img_size``, build it again
without. This works for every timm model without a hand-kept list; ``pretrained_cfg``'s
``fixed_input_size`` is not enough (e.g. ``test_vit`` does not set it but does take img_size).
The outcome is cached per architecture, so the failing call happens once per process and
before any weights are loaded.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import get_pretrained_cfg, split_model_name_tag
from torch import nn

from transferlab._helpers import first_line, plain
from transferlab.errors import ConfigError, choice_error
from transferlab.models.checkpoint import CheckpointError, load_checkpoint
from transferlab.models.depth import check_freeze_depth, depth_groups
from transferlab.models.weights import (
    FILE_HINT,
    check_all_loaded,
    check_weights_file,
    file_overlay,
    forget_state_dict,
    hub_head_reset,
    read_weights_file,
    resolve_hub_weights,
    source_overlay,
    weights_file_classes,
)

INIT_CHOICES = ("scratch", "source", "hub", "file", "previous")
IMG_SIZE_KWARG = "img_size"
#: how many close names an unknown-model error suggests
CLOSE_MATCHES = 5
CLOSE_MATCH_CUTOFF = 0.6
#: classes of the throw-away model validate_model builds (on the meta device) to count stages
_PROBE_CLASSES = 2
#: Pixels across that a model's first feature map must keep: an image its stem reduces to a
#: single pixel leaves nothing spatial to learn (it trains, to chance).
MIN_FIRST_FEATURE_PIXELS = 2
_ACCEPTS_IMG_SIZE: dict[str, bool] = {}


def check_model_name(name: str) -> None:
    """Raise a one-line ConfigError unless timm knows ``name`` (``arch`` or ``arch.tag``)."""
    arch, tag = split_model_name_tag(str(name))
    if not arch or arch not in _all_models():
        close = difflib.get_close_matches(
            str(name), _all_models(), CLOSE_MATCHES, CLOSE_MATCH_CUTOFF
        )
        hint = f"close matches: {', '.join(close)}" if close else "no close matches"
        raise ConfigError(
            f"unknown model {name!r}; {hint}; see timm.list_models() for all {len(_all_models())}"
        )
    if tag:
        try:
            get_pretrained_cfg(name)
        except RuntimeError as exc:
            tags = timm.list_pretrained(f"{arch}.*")
            raise ConfigError(
                f"unknown pretrained tag {tag!r} for {arch}; valid: {', '.join(tags) or 'none'}"
            ) from exc


def check_init(init: str) -> None:
    """Raise the standard choice error unless ``init`` is one of INIT_CHOICES."""
    if init not in INIT_CHOICES:
        raise choice_error("init", init, INIT_CHOICES)


def create_model(
    name: str,
    *,
    num_classes: int,
    in_chans: int,
    image_size: int,
    init: str = "scratch",
    init_path: str | None = None,
    source_classes: tuple[str, ...] | None = None,
    target_classes: tuple[str, ...] | None = None,
    **model_kwargs: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build timm model ``name`` for the target data and initialise it per ``init``.

    Returns the model and an info dict: ``init``, ``head_reset`` (None for scratch; for source,
    True unless ``target_classes`` equals the checkpoint's class tuple), ``num_depth_groups``,
    ``depth_groups`` (names), ``weights`` (file/hub id loaded) and ``img_size_passed``.
    """
    check_model_name(name)
    check_init(init)
    _check_sizes(num_classes, in_chans, image_size, target_classes)
    model_kwargs = plain(model_kwargs)  # OmegaConf containers from Hydra become dicts/lists
    build = dict(num_classes=num_classes, in_chans=in_chans, image_size=image_size, **model_kwargs)
    info: dict[str, Any] = {"init": init, "head_reset": None, "weights": None}
    if init == "scratch":
        model, passed = _build(name, **build)
    elif init in ("source", "previous"):  # a source stage's or a drift step's kept weights
        model, passed, info["head_reset"] = _from_source(
            name, init_path, source_classes, target_classes, build
        )
        info["weights"] = str(init_path)
    elif init == "hub":
        cached = resolve_hub_weights(name)
        if cached is not None:
            model, passed, info["head_reset"] = _from_file(name, cached, build, target_classes)
            info["weights"] = str(cached)
        else:
            try:
                model, passed = _build(name, pretrained=True, **build)
            except ConfigError as exc:  # e.g. the download broke off after the probe
                raise ConfigError(
                    f"{exc}; to use a local weights file instead: {FILE_HINT}"
                ) from exc
            info["head_reset"] = hub_head_reset(name, num_classes)
            info["weights"] = str(model.pretrained_cfg.get("hf_hub_id") or name)
    else:
        path = check_weights_file(init_path)
        model, passed, info["head_reset"] = _from_file(name, path, build, target_classes)
        info["weights"] = str(path)
    groups = depth_groups(model)
    info.update(
        num_depth_groups=len(groups), depth_groups=[g for g, _ in groups], img_size_passed=passed
    )
    return model, info


def validate_model(
    name: str,
    freeze_depth: int | None = None,
    init: str = "scratch",
    init_path: str | None = None,
    image_size: int | None = None,
    **model_kwargs: Any,
) -> int:
    """Cheap pre-flight check (no data, no weights in memory); returns the model's stage count.

    Raises ConfigError for an unknown model/init, bad kwargs, a freeze depth out of range, a
    missing weights file or source checkpoint (``init_path`` may be None for ``init=source``
    when the source stage has still to produce it), hub weights that cannot be reached, or an
    ``image_size`` below the model's smallest useful input (`min_image_size`).
    """
    check_model_name(name)
    check_init(init)
    model_kwargs = plain(model_kwargs)
    if init == "file":
        check_weights_file(init_path)
    elif init == "hub":
        resolve_hub_weights(name)
    elif init == "source" and init_path is not None:
        _check_source_model(name, load_checkpoint(init_path), init_path)
    model = model_structure(name, **model_kwargs)
    names = [g for g, _ in depth_groups(model)]
    if freeze_depth is not None:
        check_freeze_depth(name, freeze_depth, names)
    if image_size is not None and image_size < min_image_size(model):
        raise ConfigError(
            f"image_size={image_size} is too small for {name}: its first features downsample by "
            f"{min_image_size(model) // MIN_FIRST_FEATURE_PIXELS}, so it needs image_size >= "
            f"{min_image_size(model)}"
        )
    return len(names)


def pretrained_input_size(name: str) -> int:
    """The side of the square input model `name`'s pretrained weights were trained at (timm's
    pretrained config; what `image_size=auto` means)."""
    check_model_name(name)
    config = timm.get_pretrained_cfg(name)
    size = config.input_size if config is not None else None
    if size is None:
        size = model_structure(name).pretrained_cfg["input_size"]
    return int(size[-1])


def model_structure(name: str, **model_kwargs: Any) -> nn.Module:
    """Model `name`'s layers without weights (on the meta device: no memory, no init cost),
    for checks of settings against its structure."""
    try:
        with torch.device("meta"):
            return timm.create_model(name, num_classes=_PROBE_CLASSES, **model_kwargs)
    except Exception:  # bad kwargs, or a model that cannot be built on meta: the CPU tells why
        return _create(name, num_classes=_PROBE_CLASSES, **model_kwargs)


def min_image_size(model: nn.Module) -> int:
    """The smallest input side that leaves the first feature map `MIN_FIRST_FEATURE_PIXELS`
    across (from timm's `feature_info` reductions; 1 when the model does not declare them)."""
    info = getattr(model, "feature_info", None) or [{}]
    first = info[0] if isinstance(info[0], dict) else {}
    return MIN_FIRST_FEATURE_PIXELS * int(first.get("reduction", 1))


def load_checkpoint_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the saved model with its weights (eval mode), e.g. for feature extraction.

    Returns the model and the checkpoint metadata (everything but the state dict).
    """
    payload = load_checkpoint(path)
    model, _ = create_model(
        payload["model_name"],
        num_classes=len(payload["classes"]),
        in_chans=payload["in_chans"],
        image_size=payload["image_size"],
        **payload["model_kwargs"],
    )
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit {payload['model_name']}: {first_line(exc)}"
        ) from exc
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.eval(), meta


def _from_source(
    name: str,
    init_path: str | None,
    source_classes: tuple[str, ...] | None,
    target_classes: tuple[str, ...] | None,
    build: dict[str, Any],
) -> tuple[nn.Module, bool, bool]:
    if init_path is None:
        raise ConfigError("init=source needs init_path=<checkpoint written by the source stage>")
    payload = load_checkpoint(init_path)
    _check_source_model(name, payload, init_path)
    stored = payload["classes"]
    if source_classes is not None and tuple(source_classes) != stored:
        raise ConfigError(
            f"source_classes ({len(source_classes)}) differ from the {len(stored)} classes "
            f"stored in checkpoint {str(init_path)!r}"
        )
    # a checkpoint without classes (an objective without labels) has no head to keep
    keep_head = bool(stored) and target_classes is not None and tuple(target_classes) == stored
    overlay = source_overlay(name, payload["state_dict"], payload["in_chans"], keep_head)
    origin = f"source checkpoint {str(init_path)!r}"
    model, passed = _build_loaded(name, overlay, origin, build)
    check_all_loaded(model, name, overlay["state_dict"], origin)
    return model, passed, not keep_head


def _from_file(
    name: str, path: Path, build: dict[str, Any], target_classes: tuple[str, ...] | None
) -> tuple[nn.Module, bool, bool]:
    state = read_weights_file(path)
    named = weights_file_classes(path)  # a file that names its classes keeps its head for them
    same = named is None or target_classes is None or tuple(target_classes) == named
    overlay, head_reset = file_overlay(name, state, build["num_classes"], same)
    origin = f"weights file {str(path)!r}"
    model, passed = _build_loaded(name, overlay, origin, build)
    check_all_loaded(model, name, state, origin)
    return model, passed, head_reset


def _build_loaded(
    name: str, overlay: dict[str, Any], origin: str, build: dict[str, Any]
) -> tuple[nn.Module, bool]:
    """Build through timm's pretrained loader from the in-memory state dict in ``overlay``."""
    try:
        model, passed = _build(name, pretrained=True, pretrained_cfg_overlay=overlay, **build)
    except ConfigError as exc:
        cause = exc.__cause__
        detail = first_line(cause) if cause is not None else str(exc)
        raise ConfigError(f"{origin} does not fit {name}: {detail}") from exc
    forget_state_dict(model)
    return model, passed


def _check_source_model(name: str, payload: dict[str, Any], path: str | Path) -> None:
    stored = payload["model_name"]
    if split_model_name_tag(stored)[0] != split_model_name_tag(name)[0]:
        raise ConfigError(f"source checkpoint {str(path)!r} holds a {stored}, not a {name}")


def _build(name: str, *, image_size: int, **kwargs: Any) -> tuple[nn.Module, bool]:
    """timm.create_model with ``img_size=image_size`` when the architecture takes it."""
    arch = split_model_name_tag(name)[0]
    if IMG_SIZE_KWARG in kwargs:
        return _create(name, **kwargs), True
    if _ACCEPTS_IMG_SIZE.get(arch, True):
        try:
            model = _create(name, **{IMG_SIZE_KWARG: image_size}, **kwargs)
        except _ImgSizeRejected:
            _ACCEPTS_IMG_SIZE[arch] = False
        else:
            _ACCEPTS_IMG_SIZE[arch] = True
            return model, True
    return _create(name, **kwargs), False


class _ImgSizeRejected(Exception):
    """The architecture's constructor does not take ``img_size``."""


def _create(name: str, **kwargs: Any) -> nn.Module:
    """timm.create_model turning bad kwargs / unloadable weights into one-line ConfigErrors."""
    try:
        return timm.create_model(name, **kwargs)
    except ConfigError:
        raise
    except TypeError as exc:
        if IMG_SIZE_KWARG in kwargs and f"'{IMG_SIZE_KWARG}'" in str(exc):
            raise _ImgSizeRejected(str(exc)) from exc
        raise ConfigError(f"cannot build {name} with {_shown(kwargs)}: {first_line(exc)}") from exc
    except (RuntimeError, ValueError, AssertionError, KeyError, OSError) as exc:
        raise ConfigError(f"cannot build {name} with {_shown(kwargs)}: {first_line(exc)}") from exc


def _check_sizes(
    num_classes: int, in_chans: int, image_size: int, target_classes: tuple[str, ...] | None
) -> None:
    # num_classes=0: no classifier, the model outputs its pooled features (timm's convention)
    for label, value, low in (("num_classes", num_classes, 0), ("in_chans", in_chans, 1)):
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{label} must be an integer >= {low}, got {value!r}")
    if not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size!r}")
    if target_classes is not None and len(target_classes) != num_classes:
        raise ConfigError(
            f"target_classes has {len(target_classes)} names but num_classes is {num_classes}"
        )


def _shown(kwargs: dict[str, Any]) -> str:
    shown = {k: v for k, v in kwargs.items() if k != "pretrained_cfg_overlay"}
    return ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "no kwargs"


@functools.cache
def _all_models() -> tuple[str, ...]:
    """timm's registry (listing it takes ~0.2 s, and every stage of a run checks its model)."""
    return tuple(timm.list_models())
