"""A file-backed dataset streamed from disk per batch gives what the in-memory path gives.

The folder is written on disk in real formats (PNG and JPEG, RGB and grayscale, several sizes
and aspect ratios); the streamed loaders run real DataLoader worker processes, and the run test
trains with a real Lightning Trainer on both paths.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST
from PIL import Image

from transferlab.data import build_splits, clear_cache
from transferlab.data.streaming import ImageStream, UnreadableImage
from transferlab.errors import ConfigError
from transferlab.store import read_record, run_id, stage_config
from transferlab.training.loaders import eval_loader, train_loader
from transferlab.training.run import train

#: One worker runs this file: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("test_data_streaming")

CLASSES = ("ant", "bee", "cow", "emu")
PER_CLASS = 24
#: Image sides written (width, height): square, wide, tall; the loader fits them all.
SIDES = ((20, 20), (28, 18), (14, 26), (40, 40))
IMAGE_SIZE = 16
#: Every shift, image and label alike, in one spec each.
SHIFTS = [
    [{"name": "rotate", "degrees": 30}],
    [{"name": "noise", "std": 0.2, "seed": 3}],
    [{"name": "blur", "sigma": 0.8}, {"name": "contrast", "factor": 0.5}],
    [{"name": "tint", "color": [1.0, 0.5, 0.2]}, {"name": "invert"}],
    [{"name": "affine", "offset": 0.1, "scale": 0.7}, {"name": "pixel_permutation"}],
    [{"name": "label_noise", "fraction": 0.3}, {"name": "noise", "std": 0.1}],
    [{"name": "class_subset", "classes": ["emu", "ant"]}, {"name": "label_permutation"}],
]


def write_folder(root: Path, per_class: int = PER_CLASS, seed: int = 0) -> Path:
    """A class per subfolder; each image a colour per class plus noise, in varied sizes and
    formats (PNG, JPEG; some grayscale)."""
    rng = np.random.default_rng(seed)
    for index, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            width, height = SIDES[i % len(SIDES)]
            pixels = rng.integers(0, 96, (height, width, 3)) + 48 * index
            image = Image.fromarray(pixels.astype(np.uint8))
            if i % 5 == 0:
                image = image.convert("L")
            suffix = "jpg" if i % 3 == 0 else "png"
            image.save(root / name / f"{i:03d}.{suffix}")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("folder") / "images")


def _both(spec: dict, **options) -> tuple:
    clear_cache()
    args = {"image_size": IMAGE_SIZE, "channels": 3, "split_seed": 0, **options}
    memory = build_splits(spec, data_mode="memory", **args)
    stream = build_splits(spec, data_mode="stream", **args)
    return memory, stream


@pytest.mark.parametrize("shifts", SHIFTS, ids=lambda s: "+".join(x["name"] for x in s))
@pytest.mark.parametrize("pool", ["all", "target", "source"])
def test_every_split_and_shift_is_the_same_on_both_paths(folder, shifts, pool):
    spec = {"name": "image_folder", "root": str(folder), "shifts": shifts}
    memory, stream = _both(spec, pool=pool, target_share=0.5)
    assert isinstance(stream.train, ImageStream) and not isinstance(memory.train, ImageStream)
    assert stream.classes == memory.classes and stream.description == memory.description
    for split in ("train", "val", "test"):
        mine, theirs = getattr(stream, split), getattr(memory, split)
        assert torch.equal(mine.labels, theirs.labels)
        assert torch.equal(mine.origin, theirs.origin)
        assert torch.equal(mine.images_at(torch.arange(len(mine))), theirs.images)


def test_streamed_batches_from_worker_processes_equal_the_in_memory_batches(folder):
    memory, stream = _both({"name": "image_folder", "root": str(folder)})
    for epoch in (0, 1):
        loaders = [
            train_loader(data.train, 8, seed=5, min_steps_per_epoch=4, workers=workers)
            for data, workers in ((memory, 0), (stream, 2))
        ]
        for loader in loaders:
            loader.sampler.set_epoch(epoch)
        assert loaders[1].num_workers == 2
        pairs = list(zip(*loaders, strict=True))
        assert len(pairs) == max(4, math.ceil(len(memory.train) / 8))
        for (a_images, a_labels), (b_images, b_labels) in pairs:
            assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    ordered = [
        torch.cat([x for x, _ in eval_loader(d.test, 7, w)]) for d, w in ((memory, 0), (stream, 2))
    ]
    assert torch.equal(*ordered)


def test_a_stream_reads_no_pixel_until_an_example_is_asked_for(tmp_path):
    """Listing, splitting, subsets and every check read the listing only: a folder whose files
    cannot be decoded builds; reading an example names the file that failed."""
    root = write_folder(tmp_path / "images", per_class=10)
    broken = sorted((root / "bee").iterdir())[0]
    broken.write_bytes(b"not an image")
    clear_cache()
    splits = build_splits(
        {"name": "image_folder", "root": str(root), "shifts": [{"name": "rotate", "degrees": 5}]},
        image_size=IMAGE_SIZE,
        data_mode="stream",
    )
    files = [str(splits.train.reader.files[int(p)]) for p in splits.train.position]
    files += [str(splits.val.reader.files[int(p)]) for p in splits.val.position]
    files += [str(splits.test.reader.files[int(p)]) for p in splits.test.position]
    where = files.index(str(broken))
    split = ("train", "val", "test")[
        (where >= len(splits.train)) + (where >= len(splits.train) + len(splits.val))
    ]
    part = getattr(splits, split)
    position = [str(part.reader.files[int(p)]) for p in part.position].index(str(broken))
    with pytest.raises(UnreadableImage, match="cannot read image .*bee"):
        part.images_at(torch.tensor([position]))
    with pytest.raises(ConfigError, match="cannot read image .*bee"):  # in memory: at once
        build_splits({"name": "image_folder", "root": str(root)}, image_size=8, data_mode="memory")


def test_auto_streams_by_decoded_size(folder):
    clear_cache()
    spec = {"name": "image_folder", "root": str(folder)}
    decoded_mb = len(CLASSES) * PER_CLASS * 3 * IMAGE_SIZE**2 / 2**20
    small = build_splits(
        spec, image_size=IMAGE_SIZE, stream_above_mb=decoded_mb * 2, data_mode="auto"
    )
    large = build_splits(
        spec, image_size=IMAGE_SIZE, stream_above_mb=decoded_mb / 2, data_mode="auto"
    )
    assert not isinstance(small.train, ImageStream) and isinstance(large.train, ImageStream)
    digits = build_splits({"name": "digits"}, image_size=8, data_mode="stream")
    assert not isinstance(digits.train, ImageStream)  # built-in data are made in memory


def test_a_shift_that_cannot_apply_to_a_stream_fails_when_built(folder):
    clear_cache()
    spec = {
        "name": "image_folder",
        "root": str(folder),
        "shifts": [{"name": "tint", "color": [1, 1, 0]}],
    }
    with pytest.raises(ConfigError, match="tint needs 3-channel"):
        build_splits(spec, image_size=IMAGE_SIZE, channels=1, data_mode="stream")


def test_image_size_auto_is_the_models_pretrained_input_size(compose):
    auto = compose("image_size=auto", "init=scratch")
    fixed = compose("image_size=160", "init=scratch")
    stage = stage_config(auto, "target")
    assert stage.image_size == 160  # timm's test_resnet is pretrained at 160 px
    assert run_id(stage) == run_id(stage_config(fixed, "target"))


def test_a_run_trains_to_the_same_numbers_streamed_or_in_memory(compose, folder):
    """Same run id, same validation curve and test accuracy: the path is not part of a run."""
    records = {}
    for mode, workers in (("memory", 0), ("stream", 2)):
        clear_cache()
        cfg = compose(
            "init=scratch",
            "data@target=image_folder",
            f"target.root={folder}",
            "target_size=24",
            "train.batch_size=8",
            "+target.shifts=[{name: noise, std: 0.1}]",
            "augment=flip_crop",
            "logger=[csv]",
            f"data_mode={mode}",
            f"data_workers={workers}",
            f"study={mode}",
            "threads=1",
        )
        records[mode] = train(cfg)
    memory, stream = records["memory"], records["stream"]
    assert memory["status"] == stream["status"] == "completed"
    assert memory["run_id"] == stream["run_id"]
    assert memory["val_curve"] == stream["val_curve"]
    assert memory["metrics"] == stream["metrics"]


def test_a_streamed_sweep_runs_in_joblib_workers(tmp_path, folder):
    """Each run's DataLoader workers start inside a joblib worker process (whose inherited
    multiprocessing context cannot start them unless the loader names its own)."""
    results = tmp_path / "results"
    command = [
        sys.executable,
        "-m",
        "transferlab.cli.run",
        "-m",
        *FAST,
        "init=scratch",
        "data@target=image_folder",
        f"target.root={folder}",
        "target_size=24",
        "train.batch_size=8",
        "seed=0,1",
        "data_mode=stream",
        "data_workers=2",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "logger=[csv]",
        "threads=1",
        f"paths.results={results}",
        "study=streamed",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [read_record(p) for p in (results / "streamed" / "records").glob("*.json")]
    assert len(records) == 2 and {r["status"] for r in records} == {"completed"}
    assert {r["config"]["data_mode"] for r in records} == {"stream"}


def test_an_image_that_cannot_be_read_mid_run_fails_the_run_not_the_sweep(compose, tmp_path):
    """Streamed, a broken file is met in a worker while training: the run is recorded as
    failed, naming the file, and nothing is raised to stop a sweep."""
    root = write_folder(tmp_path / "images", per_class=12)
    for broken in (root / "bee").iterdir():
        broken.write_bytes(b"not an image")
    clear_cache()
    cfg = compose(
        "init=scratch", "data@target=image_folder", f"target.root={root}", "target_size=16",
        "train.batch_size=8", "data_mode=stream", "data_workers=2", "logger=[csv]", "threads=1",
    )  # fmt: skip
    record = train(cfg)
    assert record["status"] == "failed" and "cannot read image" in record["error"]
    assert "/bee/" in record["error"]
