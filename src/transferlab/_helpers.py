"""Small general helpers used across the package.

A leaf module (as timm's ``_helpers.py``): it imports nothing from ``transferlab``, so any module
may import it without creating a cycle.
"""

from __future__ import annotations

import atexit
import copy
import functools
import gc
import json
import math
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

#: Permissions of files we write: mkstemp makes 0600, but collaborators should read results.
FILE_MODE = 0o644


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: an exception shown inside a one-line user error.

    A first line ending in ``:`` (e.g. torch's "Error(s) in loading state_dict for X:") is
    joined with the next one, which holds the actual reason.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return f"{type(exc).__name__}: {text}"


def plain(value: Any) -> Any:
    """Deep-convert mappings and sequences (OmegaConf containers included) to dicts and lists.

    OmegaConf containers are resolved first (interpolations become their values).
    """
    if _is_omegaconf(value):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def copy_config(cfg: Any) -> Any:
    """A deep copy of an OmegaConf config, interpolations unresolved, flags and resolver cache
    kept: as ``copy.deepcopy``, by a pickle round trip, which costs less than half as much (a
    sweep plan copies every job's config several times). A node inside another config, or one
    holding what cannot be pickled, is copied with ``copy.deepcopy``."""
    if cfg._get_parent() is None:
        try:
            return pickle.loads(pickle.dumps(cfg, protocol=pickle.HIGHEST_PROTOCOL))
        except (pickle.PicklingError, TypeError, AttributeError):
            pass
    return copy.deepcopy(cfg)


def _is_omegaconf(value: Any) -> bool:
    return type(value).__module__.startswith("omegaconf")


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file through a temporary file in the same folder and ``os.replace``.

    ``write(handle)`` fills a binary handle. A reader sees the whole old file or the whole new
    one, never a part; a crash leaves at most a ``.<name>.*.tmp`` file that readers ignore.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def finite(value: Any) -> Any:
    """JSON has no NaN: non-finite floats become None, in nested dicts and lists too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def atomic_write_json(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as indented, key-sorted JSON atomically (non-finite floats as null)."""
    text = json.dumps(finite(dict(payload)), indent=1, sort_keys=True, default=_json_default)
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def marked_block(text: str, start: str, end: str) -> str:
    """The text between the markers `start` and `end` of a generated document section."""
    if start not in text or end not in text:
        raise ValueError(f"the text lacks the markers {start} ... {end}")
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def replace_marked_block(path: Path, start: str, end: str, body: str) -> None:
    """Write `body` between the markers `start` and `end` of the file at `path`."""
    text = path.read_text()
    marked_block(text, start, end)  # the markers are there
    before, rest = text.split(start, 1)
    path.write_text(f"{before}{start}\n{body}{end}{rest.split(end, 1)[1]}")


@functools.cache  # once per process
def exit_without_collection() -> None:
    """Skip the interpreter's last garbage collection when this process exits.

    A process that imported torch, Lightning and timm holds millions of objects, and the
    collection Python runs while it shuts down takes about a second (measured on 2 CPU cores:
    0.6-0.9 s per `transferlab-run` call, and as long again in each worker process a parallel
    sweep waits for). Everything worth keeping is written by then (records atomically, logs
    by their handlers' own exit hooks). Called as a command starts, so its hook runs after the
    hooks registered later, by W&B or joblib (exit hooks run last in, first out), and freezes
    the objects left: the interpreter's collection then skips them. An object left in a
    reference cycle is not finalised, as Python does not promise at exit anyway.
    """
    atexit.register(gc.freeze)
