"""Source-stage checkpoints: atomic save, validated load (truncation and bit rot are detected)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from transferlab._helpers import atomic_write, first_line, plain
from transferlab.errors import ConfigError

CHECKPOINT_FORMAT = "transferlab-checkpoint"
CHECKPOINT_VERSION = 1
_REQUIRED = {
    "format": str,
    "version": int,
    "state_dict": dict,
    "sha256": str,
    "model_name": str,
    "model_kwargs": dict,
    "classes": (list, tuple),
    "image_size": int,
    "in_chans": int,
}


class CheckpointError(ConfigError):
    """A checkpoint that is missing, truncated, corrupted or not one of ours."""


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    *,
    model_name: str,
    model_kwargs: dict,
    classes: tuple[str, ...],
    image_size: int,
    in_chans: int,
    input_stats: tuple = ((0.0,), (1.0,)),
) -> None:
    """Write the weights plus what is needed to rebuild the model, atomically (temp + replace).

    A reader never sees a half-written file; a sha256 over the tensors catches later corruption.
    """
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_name": model_name,
        "model_kwargs": plain(model_kwargs),
        "classes": [str(c) for c in classes],
        "num_classes": len(classes),
        "image_size": int(image_size),
        "in_chans": int(in_chans),
        "input_mean": [float(v) for v in input_stats[0]],
        "input_std": [float(v) for v in input_stats[1]],
        "timm_version": str(timm.__version__),
        "torch_version": str(torch.__version__),
        "sha256": state_digest(state),
        "state_dict": state,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Returns its dict (``classes`` as a tuple); raises CheckpointError naming ``path`` when the
    file is missing, truncated, corrupted or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # every reader failure means a damaged file
        raise CheckpointError(
            f"checkpoint {str(path)!r} is unreadable (truncated or corrupted): {first_line(exc)}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a transferlab checkpoint")
    for key, kind in _REQUIRED.items():
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(f"checkpoint {str(path)!r} lacks a valid {key!r} entry")
    if payload["version"] > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has version {payload['version']}; "
            f"this transferlab reads up to {CHECKPOINT_VERSION}"
        )
    if state_digest(payload["state_dict"]) != payload["sha256"]:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: its weights checksum differs"
        )
    payload["classes"] = tuple(payload["classes"])
    return payload


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"state_dict entry {key!r} is not a tensor")
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()
