"""Datasets and weights a path defines are identified by what they hold, not where they lie.

Image folders (PNGs in one subfolder per class) and `init=file` weights (safetensors) are
written on disk in their real formats; run ids come from the real Hydra composition, and the
re-launch test runs the real command line twice around a change of the folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import FAST
from helpers import entry
from PIL import Image
from safetensors.torch import save_file

from transferlab.data import source_pool
from transferlab.store import fingerprint, read_record, run_id, stage_config, stage_identity

CLASSES = ("cat", "dog", "owl")
PER_CLASS = 30
IMAGE_PX = 20
#: A folder's run in the re-launch test: few examples, no source stage.
FOLDER_RUN = ["init=scratch", "target_size=15", "logger=[csv]", "threads=1"]


@pytest.fixture(autouse=True)
def _fresh_fingerprints():
    """Folders are fingerprinted once per process: these tests change them in between."""
    fingerprint.clear()
    yield
    fingerprint.clear()


def _write_folder(root: Path, seed: int) -> Path:
    """PNGs of random pixels around a colour per class; `seed` decides the pixels."""
    rng = np.random.default_rng(seed)
    for index, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 64, (IMAGE_PX, IMAGE_PX, 3)) + 64 * index
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


def _ids(compose, *overrides: str) -> tuple[str, str]:
    """(source run id, target run id) of a transfer run."""
    cfg = compose(*overrides, "init=source")
    source = run_id(stage_config(cfg, "source"))
    return source, run_id(stage_config(cfg, "target", source))


def _folders(source: Path, target: Path) -> list[str]:
    return [
        "data@source=image_folder",
        f"source.root={source}",
        "data@target=image_folder",
        f"target.root={target}",
    ]


def test_two_studies_on_other_folders_get_other_run_ids(compose, tmp_path):
    # painting -> sketch and clipart -> real: the same class names, other images
    painting, sketch = (
        _write_folder(tmp_path / "painting", 0),
        _write_folder(tmp_path / "sketch", 1),
    )
    clipart, real = _write_folder(tmp_path / "clipart", 2), _write_folder(tmp_path / "real", 3)
    first = _ids(compose, *_folders(painting, sketch))
    second = _ids(compose, *_folders(clipart, real))
    assert first[0] != second[0] and first[1] != second[1]
    # only the target folder differs: one source, two target runs
    third = _ids(compose, *_folders(painting, real))
    assert third[0] == first[0] and third[1] not in (first[1], second[1])


def test_only_views_of_one_folder_split_its_pool(tmp_path):
    # two folders are two base datasets: a source of one trains on its whole pool; a view of
    # the target's own folder trains on the part no target draws from
    painting, sketch = (
        _write_folder(tmp_path / "painting", 0),
        _write_folder(tmp_path / "sketch", 1),
    )
    target = {"name": "image_folder", "root": str(sketch)}
    assert source_pool({"name": "image_folder", "root": str(painting)}, target) == "all"
    rotated = {**target, "shifts": [{"name": "rotate", "degrees": 45}]}
    assert source_pool(rotated, target) == "source"


def test_one_changed_image_is_another_dataset(compose, tmp_path):
    folder = _write_folder(tmp_path / "imgs", 0)
    before = _ids(compose, *_folders(folder, folder))
    Image.new("RGB", (IMAGE_PX, IMAGE_PX), (9, 9, 9)).save(folder / "owl" / "007.png")
    fingerprint.clear()
    assert _ids(compose, *_folders(folder, folder)) != before


def test_the_same_folder_copied_elsewhere_gives_the_same_run_ids(compose, tmp_path):
    source, target = (
        _write_folder(tmp_path / "a" / "src", 0),
        _write_folder(tmp_path / "a" / "tgt", 1),
    )
    ids = _ids(compose, *_folders(source, target))
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "a", moved)
    for png in moved.rglob("*.png"):  # a copy that does not keep modification times
        os.utime(png, ns=(0, 0))
    assert _ids(compose, *_folders(moved / "src", moved / "tgt")) == ids
    ident = stage_identity(stage_config(compose(*_folders(moved / "src", moved / "tgt")), "source"))
    assert not any(str(tmp_path) in str(value) for value in ident.values())
    assert ident["source.root_content"].startswith("sha256:")


def test_a_separate_test_folder_is_identified_by_its_content(compose, tmp_path):
    train, test = _write_folder(tmp_path / "train", 0), _write_folder(tmp_path / "test", 1)
    other = _write_folder(tmp_path / "other", 2)
    base = ["init=scratch", "data@target=image_folder", f"target.root={train}"]
    ids = {
        run_id(stage_config(compose(*base, f"target.test_root={t}"), "target"))
        for t in (test, other)
    }
    assert len(ids) == 2
    shutil.copytree(test, tmp_path / "test_copy")
    copy = run_id(
        stage_config(compose(*base, f"target.test_root={tmp_path / 'test_copy'}"), "target")
    )
    assert copy in ids


def _weights(path: Path, seed: int) -> Path:
    """A timm state dict saved as safetensors (what init=file loads)."""
    torch.manual_seed(seed)
    model = timm.create_model("test_resnet", num_classes=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _file_id(compose, path: Path) -> str:
    return run_id(stage_config(compose("init=file", f"init_path={path}"), "target"))


def test_an_overwritten_weights_file_gives_another_target_run(compose, tmp_path):
    path = _weights(tmp_path / "weights.safetensors", seed=0)
    before = _file_id(compose, path)
    _weights(path, seed=1)  # the same path, other weights
    assert _file_id(compose, path) != before


def test_the_same_weights_file_moved_elsewhere_is_the_same_target_run(compose, tmp_path):
    path = _weights(tmp_path / "here" / "weights.safetensors", seed=0)
    before = _file_id(compose, path)
    moved = tmp_path / "there" / "renamed.safetensors"
    moved.parent.mkdir()
    shutil.move(path, moved)
    assert _file_id(compose, moved) == before
    ident = stage_identity(stage_config(compose("init=file", f"init_path={moved}"), "target"))
    assert "init_path" not in ident and ident["init_weights"].startswith("sha256:")


def test_folders_are_fingerprinted_once_per_process_without_decoding(tmp_path, monkeypatch):
    folder = _write_folder(tmp_path / "imgs", 0)
    decoded, read = [], []
    monkeypatch.setattr(Image, "open", lambda *a, **k: decoded.append(a))
    first = fingerprint.folder_fingerprint(folder)
    assert first is not None and not decoded  # bytes hashed, no image decoded
    monkeypatch.setattr(fingerprint, "_hash_file", lambda p: read.append(p))
    assert fingerprint.folder_fingerprint(str(folder) + "/") == first  # cached: nothing read
    assert not read
    assert fingerprint.folder_fingerprint(tmp_path / "nowhere") is None  # the loader reports it


def test_a_folder_is_read_once_per_state_not_once_per_process(tmp_path, monkeypatch):
    """A later process (here: after `clear`) lists and stats the folder; it reads bytes again
    only when a file was written, even in place, at the same size, with its modification time
    set back. A folder written moments ago is not remembered (coarse file-system clocks)."""
    monkeypatch.setenv(fingerprint.CACHE_ENV, str(tmp_path / "cache"))
    folder = _write_folder(tmp_path / "imgs", 0)
    read = []
    real_hash = fingerprint._hash_file
    monkeypatch.setattr(fingerprint, "_hash_file", lambda p: read.append(p) or real_hash(p))
    first = fingerprint.folder_fingerprint(folder)
    fingerprint.clear()
    assert fingerprint.folder_fingerprint(folder) == first  # written just now: read again
    assert len(read) == 2 * len(CLASSES) * PER_CLASS
    monkeypatch.setattr(fingerprint, "RACY_S", -1.0)  # as if written long ago
    fingerprint.clear()
    fingerprint.folder_fingerprint(folder)  # read, and now remembered
    fingerprint.clear()
    read.clear()
    assert fingerprint.folder_fingerprint(folder) == first and not read
    png = folder / "dog" / "003.png"
    stamp, data = png.stat(), bytearray(png.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed in place: same size
    png.write_bytes(bytes(data))
    os.utime(png, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the old modification time
    fingerprint.clear()
    changed = fingerprint.folder_fingerprint(folder)
    assert changed != first and len(read) == len(CLASSES) * PER_CLASS
    monkeypatch.setenv(fingerprint.CACHE_ENV, str(tmp_path / "cache" / "file"))
    (tmp_path / "cache" / "file").write_text("not a folder")  # a cache that cannot be written
    fingerprint.clear()
    assert fingerprint.folder_fingerprint(folder) == changed


def _launch(
    results: Path, folder: Path, cwd: Path, forked: bool = True
) -> subprocess.CompletedProcess:
    """The sweep, forked from a process that imported the package (`helpers.entry`), or
    (`forked=False`) as a user types it."""
    fast = [arg for arg in FAST if not arg.startswith(("target_size", "source_size"))]
    cmd = [
        sys.executable, "-m", "transferlab.cli.run", "-m", *fast, *FOLDER_RUN,
        f"paths.results={results}", "study=folder", "data@target=image_folder",
        f"target.root={folder}", "seed=0",
    ]  # fmt: skip
    proc = entry.run(cmd, cwd=cwd, timeout=300, typed=not forked)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_a_relaunch_after_the_folder_changed_trains_again(tmp_path):
    results, folder = tmp_path / "results", _write_folder(tmp_path / "imgs", 0)
    records = results / "folder" / "records"
    _launch(results, folder, tmp_path, forked=False)
    (first,) = [read_record(p) for p in records.glob("*.json")]
    assert first["status"] == "completed"
    # other images in the same files: the plan must not take the first run as this one
    for png in (folder / "dog").glob("*.png"):
        Image.new("RGB", (IMAGE_PX, IMAGE_PX), (200, 10, 10)).save(png)
    again = _launch(results, folder, tmp_path)
    assert "1 completed, 0 skipped" in again.stdout + again.stderr
    second = [read_record(p) for p in records.glob("*.json") if p.stem != first["run_id"]]
    assert len(second) == 1 and second[0]["status"] == "completed"
    assert second[0]["identity"]["target.root_content"] != first["identity"]["target.root_content"]
    # unchanged since: the plan keeps it as done
    third = _launch(results, folder, tmp_path)
    assert "0 completed, 1 skipped" in third.stdout + third.stderr
