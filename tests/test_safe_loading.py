"""Files under a results folder, a cache or a user path never run code when read.

Results folders are shared, copied and downloaded: each place that reads a file gets a planted
one whose unpickling would create a marker folder, and must refuse or ignore it. The first test
shows the payload is live (plain unpickling does run it).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd

from transferlab.errors import ConfigError
from transferlab.models import CheckpointError, load_checkpoint
from transferlab.models.weights import read_weights_file
from transferlab.training.fit import resumable_checkpoint


class Payload:
    """Unpickling this makes the folder `marker`: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _torch_file(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload(marker)}, path)
    return path


def test_the_planted_payload_runs_code_when_unpickled(tmp_path):
    marker = tmp_path / "ran"
    path = _torch_file(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.is_dir()  # so the refusals below are refusals of live code


def test_resume_checkpoint_is_refused_and_removed(tmp_path):
    marker = tmp_path / "ran"
    path = _torch_file(tmp_path / "last.ckpt", marker)
    assert resumable_checkpoint(path) is None  # the run starts afresh
    assert not path.exists() and not marker.exists()


def test_source_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = _torch_file(tmp_path / "model.pt", marker)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pth", ".bin"])
def test_init_file_weights_are_refused(tmp_path, suffix):
    marker = tmp_path / "ran"
    path = _torch_file(tmp_path / f"weights{suffix}", marker)
    with pytest.raises(ConfigError, match="unreadable"):
        read_weights_file(path)
    assert not marker.exists()


def test_feature_cache_with_pickled_arrays_is_ignored_and_recomputed(tmp_path):
    from transferlab.analysis.shift import OutputCache

    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    np.savez(buffer, feats=np.array([Payload(marker)], dtype=object))
    (tmp_path / "out-key.npz").write_bytes(buffer.getvalue())
    fresh = {"feats": np.ones((2, 3))}
    got = OutputCache(tmp_path).get("out-key", lambda: fresh)
    assert np.array_equal(got["feats"], fresh["feats"]) and not marker.exists()
    with np.load(tmp_path / "out-key.npz") as data:  # replaced by the recomputed arrays
        assert data["feats"].dtype == np.float64


def test_cifar_batch_that_is_not_the_published_file_is_refused(tmp_path):
    # torchvision unpickles CIFAR batches only after checking each file's published md5: a
    # planted batch fails that check and is refused before it is read.
    marker = tmp_path / "ran"
    folder = tmp_path / tvd.CIFAR10.base_folder
    folder.mkdir()
    for name, _ in [*tvd.CIFAR10.train_list, *tvd.CIFAR10.test_list]:
        (folder / name).write_bytes(pickle.dumps({"data": Payload(marker), "labels": [0]}))
    (folder / tvd.CIFAR10.meta["filename"]).write_bytes(pickle.dumps(Payload(marker)))
    published = dict(tvd.CIFAR10.train_list)["data_batch_1"]
    planted = hashlib.md5((folder / "data_batch_1").read_bytes()).hexdigest()
    assert planted != published
    from transferlab.data import build_splits

    with pytest.raises(ConfigError, match="cifar10"):
        build_splits({"name": "cifar10", "root": str(tmp_path)}, image_size=8)
    assert not marker.exists()
