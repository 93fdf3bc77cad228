"""Where initial weights come from: local files, the Hugging Face hub (fail fast offline), sources.

All three non-scratch modes go through timm's own loader (``pretrained=True`` with a
``pretrained_cfg_overlay``), so timm applies the model's checkpoint filter (e.g. resampling a ViT
position embedding to the target image size), adapts the stem to the target ``in_chans`` and drops
the classifier when its size differs. We only decide *whether* the head is kept and check that
every non-classifier weight was actually present, since timm loads non-strictly once it drops a
head.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import torch
from timm.models import get_pretrained_cfg
from timm.models import load_state_dict as timm_load_state_dict

from transferlab._helpers import atomic_write, first_line
from transferlab.errors import ConfigError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
#: seconds allowed for the reachability probe of the hub before giving up
HUB_PROBE_TIMEOUT_S = 3.0
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
#: missing weight names quoted in an error message
_MAX_QUOTED_KEYS = 3
FILE_HINT = "init=file init_path=/path/to/model.safetensors"
#: safetensors metadata key of the class names a weights file's classifier predicts (written by
#: `transferlab-export`): a file that names them keeps its head only for the same classes
CLASSES_KEY = "transferlab.classes"
#: A safetensors file starts with its header's length (little-endian) in this many bytes ...
_HEADER_BYTES = 8
#: ... and pads the header with spaces to a multiple of this many bytes.
_HEADER_ALIGN = 8


def classifier_names(model_name: str) -> tuple[str, ...]:
    """Module names of the model's final classifier(s) per its timm pretrained cfg."""
    cfg = _pretrained_cfg(model_name)
    names = cfg.get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def classifier_keys(model_name: str) -> set[str]:
    """State-dict keys of the classifier (weight and bias of each classifier module)."""
    return {
        f"{name}.{leaf}" for name in classifier_names(model_name) for leaf in ("weight", "bias")
    }


def classifier_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules a head reset re-initialises: those the model's timm pretrained config names
    as its classifier (what `source_overlay` drops from a source checkpoint and timm's loader
    from other weights; a neck before them, e.g. ConvNeXt's `head.norm`, is transferred), or
    `get_classifier()`'s for a model without such a config."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    modules = dict(model.named_modules())
    if any(name in modules for name in names):
        return [modules[name] for name in names if name in modules]
    getter = getattr(model, "get_classifier", None)
    found = getter() if getter is not None else ()
    found = found if isinstance(found, tuple | list) else (found,)
    return [m for m in found if isinstance(m, torch.nn.Module)]


def classifier_parameters(model: torch.nn.Module) -> set[str]:
    """Full names of the parameters of `classifier_modules(model)`."""
    ids = {id(p) for module in classifier_modules(model) for p in module.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def check_weights_file(path: str | os.PathLike | None, kind: str = "weights file") -> Path:
    """Return ``path`` as a Path, or raise a one-line ConfigError if it is unset or missing."""
    if path is None or str(path) == "":
        raise ConfigError(
            f"init=file needs init_path=/path/to/model.safetensors (one of {_suffixes()})"
        )
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ConfigError(f"{kind} {str(resolved)!r} does not exist")
    if resolved.suffix not in WEIGHT_SUFFIXES:
        raise ConfigError(f"{kind} {str(resolved)!r} is not one of {_suffixes()}")
    return resolved


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a timm-format state dict from .safetensors/.pth/.bin (nested ``state_dict`` is fine)."""
    try:
        return timm_load_state_dict(str(path), use_ema=False, weights_only=True)
    except Exception as exc:  # any reader failure is a bad file for the user
        raise ConfigError(f"weights file {str(path)!r} is unreadable: {first_line(exc)}") from exc


def write_weights_file(
    path: str | os.PathLike, state_dict: dict[str, torch.Tensor], metadata: dict[str, str]
) -> Path:
    """Write ``state_dict`` as a timm-format .safetensors file with string ``metadata``,
    atomically (a reader sees the whole file or none) and byte for byte the same for the same
    tensors and metadata: safetensors writes its header's metadata in hash order, so the header
    is written again with sorted keys (a file's sha256 is what identifies an `init=file` run)."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    payload = save(tensors, metadata={"format": "pt", **metadata})
    length = int.from_bytes(payload[:_HEADER_BYTES], "little")
    header = json.loads(payload[_HEADER_BYTES : _HEADER_BYTES + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % _HEADER_ALIGN)  # the data stay aligned, as safetensors pads
    data = payload[_HEADER_BYTES + length :]
    blob = len(text).to_bytes(_HEADER_BYTES, "little") + text + data
    return atomic_write(path, lambda handle: handle.write(blob))


def weights_file_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a .safetensors file ({} for other formats or none)."""
    if Path(path).suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # any reader failure is a bad file for the user
        raise ConfigError(f"weights file {str(path)!r} is unreadable: {first_line(exc)}") from exc


def weights_file_classes(path: str | os.PathLike) -> tuple[str, ...] | None:
    """The class names a weights file says its classifier predicts, or None when it names none."""
    named = weights_file_metadata(path).get(CLASSES_KEY)
    if not named:
        return None
    try:
        classes = json.loads(named)
    except ValueError:
        classes = None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ConfigError(f"weights file {str(path)!r}: {CLASSES_KEY} is not a list of names")
    return tuple(classes)


def classifier_rows(model_name: str, state_dict: dict[str, Any]) -> int | None:
    """Output size of the classifier stored in ``state_dict`` (None when it has none)."""
    return _classifier_rows(model_name, state_dict)


def file_overlay(
    model_name: str, state_dict: dict[str, Any], num_classes: int, same_classes: bool = True
) -> tuple[dict, bool]:
    """timm ``pretrained_cfg_overlay`` to load ``state_dict``, and whether the head is reset.

    The head is kept when the file's classifier already has ``num_classes`` outputs and
    ``same_classes`` (False when the file names other classes than the target's).
    """
    cfg = _pretrained_cfg(model_name)
    file_classes = _classifier_rows(model_name, state_dict)
    keep_head = same_classes and file_classes == num_classes
    if not keep_head:
        state_dict = {k: v for k, v in state_dict.items() if k not in classifier_keys(model_name)}
    input_size = tuple(cfg.get("input_size") or (3, 224, 224))
    file_chans = _first_conv_chans(cfg, state_dict) or input_size[0]
    overlay = {
        "state_dict": state_dict,
        # timm drops the classifier when this differs from the model's num_classes; 0 never matches
        "num_classes": file_classes if keep_head else 0,
        "input_size": (file_chans, *input_size[1:]),
        "label_offset": 0,
    }
    return overlay, not keep_head


def source_overlay(
    model_name: str, state_dict: dict[str, Any], source_in_chans: int, keep_head: bool
) -> dict:
    """timm ``pretrained_cfg_overlay`` for a source checkpoint; drops its classifier unless kept."""
    cfg = _pretrained_cfg(model_name)
    input_size = tuple(cfg.get("input_size") or (3, 224, 224))
    state = dict(state_dict)
    rows = _classifier_rows(model_name, state)
    if not keep_head:
        for key in classifier_keys(model_name):
            state.pop(key, None)
    return {
        "state_dict": state,
        # timm drops the classifier when this differs from the model's num_classes; 0 never matches
        "num_classes": rows if keep_head and rows is not None else 0,
        "input_size": (source_in_chans, *input_size[1:]),
        "label_offset": 0,
    }


def check_all_loaded(
    model: torch.nn.Module, model_name: str, state_dict: dict[str, Any], origin: str
) -> None:
    """Raise if any non-classifier weight of ``model`` was absent from the loaded state dict."""
    skip = classifier_keys(model_name)
    missing = [k for k in model.state_dict() if k not in state_dict and k not in skip]
    if missing:
        quoted = ", ".join(missing[:_MAX_QUOTED_KEYS])
        raise ConfigError(
            f"{origin} does not fit {model_name}: {len(missing)} weights missing (e.g. {quoted})"
        )


def forget_state_dict(model: torch.nn.Module) -> None:
    """Drop the in-memory state dict timm keeps in ``model.pretrained_cfg`` after loading."""
    for attr in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attr, None)
        if isinstance(cfg, dict):
            cfg.pop("state_dict", None)


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` asks huggingface_hub not to touch the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE_VALUES


def hub_endpoint() -> str:
    """The hub endpoint huggingface_hub would use (``HF_ENDPOINT`` or huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or DEFAULT_HF_ENDPOINT


def probe_endpoint(url: str, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Reachability check of ``url`` bounded by ``timeout_s`` (DNS included); None if reachable.

    Any HTTP answer, even an error status, counts as reachable. Runs in a daemon thread because
    name resolution ignores socket timeouts.
    """
    outcome: list[str | None] = []

    def attempt() -> None:
        request = urllib.request.Request(url, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s):  # http(s) only
                outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)
        except Exception as exc:  # every failure means "unreachable"
            outcome.append(first_line(exc) or type(exc).__name__)

    if not url.startswith(("http://", "https://")):
        return f"endpoint {url!r} is not an http(s) URL"
    thread = threading.Thread(target=attempt, name="transferlab-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    if not outcome:
        return f"no answer from {url} within {timeout_s:g} s"
    return None if outcome[0] is None else f"{url} unreachable: {outcome[0]}"


def resolve_hub_weights(model_name: str) -> Path | None:
    """Check hub weights can be had before asking timm for them; fail fast offline.

    Returns a cached weights file when huggingface_hub already has one (loaded like init=file, no
    network), None when the endpoint answers (timm may download), and raises ConfigError otherwise.
    """
    cfg = _pretrained_cfg(model_name)
    hub_id, url = cfg.get("hf_hub_id"), cfg.get("url")
    if not hub_id and not url:
        raise ConfigError(
            f"timm has no pretrained weights for {model_name}; use init=scratch or {FILE_HINT}"
        )
    cached = _cached_hub_file(hub_id, cfg.get("hf_hub_filename")) if hub_id else None
    if cached is not None:
        return cached
    target = hub_id or url
    if hub_offline():
        reason = "HF_HUB_OFFLINE is set"
    else:
        endpoint = hub_endpoint() if hub_id else _origin(str(url))
        reason = probe_endpoint(endpoint)
    if reason is not None:
        raise ConfigError(
            f"cannot fetch pretrained weights {target} for {model_name} ({reason}); "
            f"to use a local weights file instead: {FILE_HINT}"
        )
    return None


def hub_head_reset(model_name: str, num_classes: int) -> bool:
    """Whether timm re-initialises the head when loading hub weights for ``num_classes``."""
    return _pretrained_cfg(model_name).get("num_classes") != num_classes


def _cached_hub_file(hub_id: str, filename: str | None) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with timm
        return None
    repo_id, _, revision = hub_id.partition("@")
    for name in (filename,) if filename else HF_WEIGHT_FILES:
        found = try_to_load_from_cache(
            repo_id, name, cache_dir=_hub_cache_dir(), revision=revision or None
        )
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _hub_cache_dir() -> str | None:
    """The hub cache per the environment now (huggingface_hub reads it once, at import)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return explicit
    home = os.environ.get("HF_HOME")
    return str(Path(home) / "hub") if home else None


def _pretrained_cfg(model_name: str) -> dict[str, Any]:
    cfg = get_pretrained_cfg(model_name, allow_unregistered=True)
    return cfg.to_dict() if cfg is not None else {}


def _classifier_rows(model_name: str, state_dict: dict[str, Any]) -> int | None:
    """Output size of the classifier stored in ``state_dict`` (None when it has none)."""
    for name in classifier_names(model_name):
        weight = state_dict.get(f"{name}.weight")
        if isinstance(weight, torch.Tensor) and weight.ndim >= 1:
            return int(weight.shape[0])
    return None


def _first_conv_chans(cfg: dict[str, Any], state_dict: dict[str, Any]) -> int | None:
    convs = cfg.get("first_conv") or ()
    for name in (convs,) if isinstance(convs, str) else convs:
        weight = state_dict.get(f"{name}.weight")
        if isinstance(weight, torch.Tensor) and weight.ndim == 4:
            return int(weight.shape[1])
    return None


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _suffixes() -> str:
    return "/".join(WEIGHT_SUFFIXES)


__all__ = [
    "CLASSES_KEY",
    "FILE_HINT",
    "HUB_PROBE_TIMEOUT_S",
    "check_all_loaded",
    "check_weights_file",
    "classifier_keys",
    "classifier_rows",
    "file_overlay",
    "forget_state_dict",
    "hub_head_reset",
    "hub_offline",
    "probe_endpoint",
    "read_weights_file",
    "weights_file_classes",
    "weights_file_metadata",
    "write_weights_file",
    "resolve_hub_weights",
    "source_overlay",
]
