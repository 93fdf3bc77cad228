"""Content fingerprints of the files a path defines: the user's image folders and `init=file`
weights. A run is identified by what those files hold, not by where they lie.

The rule, and why:

* an **image folder** is the sha256 of its listing as the loader reads it (the class folders
  and image files torchvision's `ImageFolder` takes, with their paths relative to the folder)
  and of each file's bytes. Exact: a changed, added, removed or renamed image (or class) is a
  new dataset, whatever its size and modification time say; the same images anywhere (a copy
  made with any tool, a node-local copy on a cluster, a fresh checkout) are the same dataset,
  so the sweep plan and every job agree on one id. A listing of sizes and modification times
  would be cheaper (no read), but a copy that does not keep the times would re-run a study,
  and nodes staging their own copy would disagree on every id. The price is one read of every
  byte, once per process, less than the loader's own decoding of every image; no pixel is
  decoded here;
* a **weights file** (`init=file`) is the sha256 of its bytes: an overwritten checkpoint is new
  weights, the same file moved elsewhere the same weights.

A folder is fingerprinted once per process and path (a sweep plan computes run ids for thousands
of grid points); a file again only when its size, modification time or inode changed. A folder
changed while a process runs is seen by the next process (or after `clear`). Without a writable
cache folder every process reads the bytes again (same fingerprints, slower). A missing or
unreadable path has no fingerprint (None): the loader then reports it, in its usual one line.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transferlab._helpers import atomic_write

#: Marks a digest in an identity: the algorithm, then the hex digest.
DIGEST_PREFIX = "sha256:"
#: Suffix of the identity key that holds the fingerprint of a dataset's path option.
CONTENT_SUFFIX = "_content"

#: Environment variable naming the folder fingerprints are remembered in (see `cache_dir`).
CACHE_ENV = "TRANSFERLAB_CACHE"
#: The fingerprint rule's version, in every remembered key: a changed rule remembers anew.
RULE_VERSION = 1
#: A folder with a file written less than this many seconds ago is not remembered: a file
#: system with coarse timestamps (NFS, FAT, older kernels) could give a rewrite within the same
#: tick the same times, and the remembered fingerprint would outlive it ("racy git").
RACY_S = 2.0
_REMEMBERED = re.compile(r"^sha256:[0-9a-f]{64}$")

_folders: dict[str, str] = {}
_files: dict[tuple[str, int, int, int], str] = {}


def _absolute(path: str | os.PathLike) -> str:
    """The path as the loaders open it: user folder expanded, relative to the working folder."""
    return os.path.abspath(os.path.expanduser(str(path)))


def _hash_file(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_fingerprint(path: str | os.PathLike | None) -> str | None:
    """`sha256:<hex>` of a file's bytes, or None when there is no readable file at `path`."""
    if path is None or str(path) == "":
        return None
    where = _absolute(path)
    try:
        stat = os.stat(where)
        if not Path(where).is_file():
            return None
        key = (where, stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if key not in _files:
            _files[key] = DIGEST_PREFIX + _hash_file(where)
        return _files[key]
    except OSError:
        return None


def _image_files(root: str) -> list[str]:
    """The image files of an ImageFolder-layout folder, in the loader's order (what
    `torchvision.datasets.ImageFolder` reads: class folders sorted, then files sorted)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    _, class_to_idx = find_classes(root)
    return [file for file, _ in make_dataset(root, class_to_idx, extensions=IMG_EXTENSIONS)]


def cache_dir() -> Path:
    """Where folder fingerprints are remembered: `$TRANSFERLAB_CACHE`, else
    `$XDG_CACHE_HOME/transferlab` (`~/.cache/transferlab`), each under `fingerprints/`."""
    explicit = os.environ.get(CACHE_ENV)
    base = Path(explicit) if explicit else None
    if base is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        base = Path(xdg).expanduser() / "transferlab"
    return base / "fingerprints"


def _relative(root: str, file: str) -> str:
    """A listed file's path inside the folder, with "/" separators (what `Path.relative_to`
    gives, without its cost: the listing joins each path onto the folder)."""
    return file[len(root) :].lstrip(os.sep).replace(os.sep, "/")


def _state_key(root: str, files: list[str]) -> tuple[str, float]:
    """sha256 of the rule's version, the folder's path and each image's path, size, times and
    inode (what changes whenever a file is written, added, removed, renamed or copied), and
    the newest of those times (seconds)."""
    digest = hashlib.sha256(f"{RULE_VERSION}\n{root}\n".encode())
    newest = 0
    for file in files:
        st = os.stat(file)
        stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
        newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
        digest.update(f"{_relative(root, file)}\0{stamp}\n".encode())
    return digest.hexdigest(), newest / 1e9


def _remembered(key: str) -> str | None:
    try:
        text = (cache_dir() / key).read_text().strip()
    except OSError:
        return None
    return text if _REMEMBERED.match(text) else None


def _remember(key: str, value: str) -> None:
    """Keep a folder's fingerprint for later processes; a cache that cannot be written costs
    speed only."""
    try:
        atomic_write(cache_dir() / key, lambda handle: handle.write(value.encode()))
    except OSError:
        pass


def folder_fingerprint(path: str | os.PathLike | None) -> str | None:
    """`sha256:<hex>` of an image folder: each image's path relative to the folder (its class
    folder included) and the sha256 of its bytes; None for a missing or unreadable folder.
    Remembered per process and, by the folder's state, across processes (`cache_dir`)."""
    if path is None or str(path) == "":
        return None
    root = _absolute(path)
    if root in _folders:
        return _folders[root]
    try:
        files = _image_files(root)
        key, newest = _state_key(root, files)
        if (known := _remembered(key)) is None:
            digest = hashlib.sha256()
            for file in files:
                digest.update(f"{_relative(root, file)}\0{_hash_file(file)}\n".encode())
            known = DIGEST_PREFIX + digest.hexdigest()
            if time.time() - newest > RACY_S:
                _remember(key, known)
    except (OSError, RuntimeError, ValueError):  # the loader reports it, in one line
        return None
    _folders[root] = known
    return known


def content_identity(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A normalised dataset spec as it enters a run's identity: each option that names files
    defining the data (the registry's `content_options`, e.g. an image folder's `root` and
    `test_root`) is replaced by `<option>_content`, the fingerprint of what it names."""
    from transferlab.data.registry import get_dataset

    options = get_dataset(spec["name"]).content_options
    out = {key: value for key, value in spec.items() if key not in options}
    for option in options:
        out[option + CONTENT_SUFFIX] = folder_fingerprint(spec.get(option))
    return out


def run_inputs(cfg: Any) -> dict[str, str | None]:
    """The files a run's id depends on by content, `{"folder:<path>" | "file:<path>":
    fingerprint}`: the target's (and with init=source the source's) path-defined datasets, and
    the weights file of init=file. A sweep plan keeps them to notice a changed file."""
    from transferlab._helpers import plain
    from transferlab.data import normalize_spec
    from transferlab.data.registry import get_dataset

    inputs: dict[str, str | None] = {}
    specs = [cfg.target, cfg.source] if cfg.init == "source" else [cfg.target]
    for spec in specs:
        norm = normalize_spec(plain(spec))
        for option in get_dataset(norm["name"]).content_options:
            if norm.get(option) is not None:
                path = _absolute(norm[option])
                inputs[f"folder:{path}"] = folder_fingerprint(path)
    if cfg.init == "file" and cfg.get("init_path"):
        path = _absolute(cfg.init_path)
        inputs[f"file:{path}"] = file_fingerprint(path)
    return inputs


def inputs_unchanged(inputs: Mapping[str, str | None]) -> bool:
    """Whether every file of `run_inputs` still has the fingerprint recorded there."""
    measure = {"folder": folder_fingerprint, "file": file_fingerprint}
    for key, recorded in inputs.items():
        kind, _, path = key.partition(":")
        if kind not in measure or measure[kind](path) != recorded:
            return False
    return True


def clear() -> None:
    """Forget every fingerprint of this process (a folder changed while it runs)."""
    _folders.clear()
    _files.clear()
