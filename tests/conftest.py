"""Shared test set-up: W&B pinned offline, Hydra composition of the real configs."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# With an API key and no network, wandb.init blocks for 100 s: tests always run offline.
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ.pop("WANDB_API_KEY", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Folder fingerprints are remembered in a cache folder: the tests' own, not the user's,
# removed when the test process ends.
if "TRANSFERLAB_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="transferlab-test-cache-")
    os.environ["TRANSFERLAB_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_wandb_service() -> None:
    """Every child process starts its own W&B service. A W&B run started in this process (an
    in-process training test) leaves WANDB_SERVICE set here; a child inheriting it would join
    this process's service, which outlives a SIGKILLed child and keeps its run id "in use", so
    the child's relaunch with the same id would fail."""
    os.environ.pop("WANDB_SERVICE", None)


REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"

# Small and fast: enough to train something in a second or two. W&B (the default logger with
# csv) costs a process about 2 s (its service) and each further run about 0.6 s: the tests that
# read W&B files ask for it (`logger=[wandb,csv]`, given after FAST: the last value wins).
FAST = [
    "image_size=16",
    "model=test_resnet",
    "train.epochs=2",
    "pretrain.epochs=2",
    "source_size=200",
    "target_size=50",
    "trainer.enable_progress_bar=false",
    "logger=[csv]",
    "threads=1",
]


@pytest.fixture
def compose(tmp_path: Path):
    """Compose the real Hydra config with overrides, results under a temporary folder."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import transferlab.cli.run  # noqa: F401 - registers the tl.uid resolver

    def _compose(*overrides: str, fast: bool = True):
        args = [*(FAST if fast else []), f"paths.results={tmp_path / 'results'}", *overrides]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=args)

    return _compose


@pytest.fixture
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    """One test at a time on the local Slurm: its tests count and time the cluster's jobs.

    Every test that submits Slurm jobs sits in test_slurm.py, which `--dist loadfile` keeps on
    one worker; the lock (in the folder every pytest-xdist worker's temporary folder sits in)
    keeps them apart under any other distribution too. (`xdist_group` cannot: under pytest 9 the
    group suffix xdist adds to a test's id is lost, so `--dist loadgroup` spreads a group.)"""
    from filelock import FileLock

    with FileLock(str(tmp_path_factory.getbasetemp().parent / "slurm_cluster.lock")):
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long files first, so that no worker is left running one alone at the end: the Slurm
    tests (one job at a time on the cluster: minutes of one worker), then files with slow
    tests, then the rest, each file's tests in their own order (pytest-xdist hands out whole
    files, `--dist loadfile`, in this order)."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("slurm"):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    files: dict[Path, int] = {}
    for item in items:
        files[item.path] = min(files.get(item.path, 2), rank(item))
    items.sort(key=lambda item: files[item.path])
