"""torchvision datasets and image folders, read from tiny files fabricated in each real format.

Every image is a constant fill whose value encodes its position, so after resizing we can still
check that images, labels and origins line up. Nothing is downloaded (download=False).
"""

from __future__ import annotations

import bz2
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets as tvd
from PIL import Image

from transferlab.data import DatasetSplits, build_splits
from transferlab.errors import ConfigError

SIZE = 12
N_CLASSES = 10
PER_CLASS_TRAIN = 3


def fills(n: int, start: int) -> np.ndarray:
    """Distinct constant fill values (uint8) for n images."""
    return (start + 2 * np.arange(n)).astype(np.uint8)


def labels_for(n: int, classes: int = N_CLASSES) -> np.ndarray:
    return np.arange(n) % classes


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def check_loaded(
    splits: DatasetSplits,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    channels: int,
    tolerance: int = 0,
) -> None:
    """The loaded splits hold exactly the fabricated images (by fill), labels and origins."""
    (train_fill, train_labels), (test_fill, test_labels) = train, test
    offset = len(train_labels)
    assert splits.official_test_offset == offset
    assert len(splits.train) + len(splits.val) == offset and len(splits.test) == len(test_labels)
    assert splits.test.origin.tolist() == list(range(offset, offset + len(test_labels)))
    fill = np.concatenate([train_fill, test_fill]).astype(np.int64)
    label = np.concatenate([train_labels, test_labels])
    for part in (splits.train, splits.val, splits.test):
        assert part.images.shape[1:] == (channels, SIZE, SIZE)
        assert part.images.dtype == torch.uint8
        origin = part.origin.numpy()
        assert np.array_equal(part.labels.numpy(), label[origin])
        expected = torch.as_tensor(fill[origin]).view(-1, 1, 1, 1).expand_as(part.images)
        assert (part.images.long() - expected).abs().max() <= tolerance


# --- MNIST family: idx-ubyte files under <root>/<Class>/raw/ -------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format: magic (0, 0, 0x08 = ubyte, ndim), big-endian int32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fabricate_mnist(root: Path, folder: str) -> tuple[tuple, tuple]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    out = []
    for prefix, n, start in (("train", N_CLASSES * PER_CLASS_TRAIN, 10), ("t10k", 10, 150)):
        fill, label = fills(n, start), labels_for(n)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.ones((n, 28, 28)) * fill[:, None, None])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", label)
        out.append((fill, label))
    return out[0], out[1]


@pytest.mark.parametrize(
    ("name", "cls"),
    [("mnist", tvd.MNIST), ("fashion_mnist", tvd.FashionMNIST), ("kmnist", tvd.KMNIST)],
)
def test_mnist_family_reads_idx_files(name: str, cls: type, tmp_path: Path) -> None:
    train, test = fabricate_mnist(tmp_path, cls.__name__)
    spec = {"name": name, "root": str(tmp_path), "download": False}
    splits = build_splits(spec, image_size=SIZE, channels=3)
    assert splits.classes == tuple(cls.classes)
    check_loaded(splits, train, test, channels=3)


# --- USPS: bz2-compressed libsvm text, labels 1..10, pixels in [-1, 1] ---------------------


def fabricate_usps(root: Path) -> tuple[tuple, tuple]:
    out = []
    files = (("usps.bz2", N_CLASSES * PER_CLASS_TRAIN, 10), ("usps.t.bz2", 10, 150))
    for filename, n, start in files:
        fill, label = fills(n, start), labels_for(n)
        lines = []
        for value, y in zip(fill, label, strict=True):
            pixel = 2 * (int(value) + 0.5) / 255 - 1  # mid-bin, so truncation gives `value`
            lines.append(f"{y + 1} " + " ".join(f"{i}:{pixel:.6f}" for i in range(1, 257)))
        (root / filename).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
        out.append((fill, label))
    return out[0], out[1]


def test_usps_reads_bz2_libsvm_files(tmp_path: Path) -> None:
    train, test = fabricate_usps(tmp_path)
    splits = build_splits({"name": "usps", "root": str(tmp_path)}, image_size=SIZE, channels=1)
    assert splits.classes == tuple(str(d) for d in range(10))
    check_loaded(splits, train, test, channels=1)


# --- SVHN: .mat files, X (32, 32, 3, N), y (N, 1) with 10 meaning digit 0 -------------------


def test_svhn_reads_mat_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = []
    for filename, n, start in (("train_32x32.mat", 30, 10), ("test_32x32.mat", 10, 150)):
        fill, label = fills(n, start), labels_for(n)
        x = np.ones((32, 32, 3, n), dtype=np.uint8) * fill[None, None, None, :]
        y = np.where(label == 0, 10, label).reshape(n, 1)
        scipy.io.savemat(tmp_path / filename, {"X": x, "y": y})
        out.append((fill, label))
    # torchvision checks SVHN files against the md5 of the real ones; point its md5 table at
    # our fabricated files (the only patch: the loader itself runs unmodified).
    table = {k: list(v) for k, v in tvd.SVHN.split_list.items()}
    for split, filename in (("train", "train_32x32.mat"), ("test", "test_32x32.mat")):
        table[split][2] = md5(tmp_path / filename)
    monkeypatch.setattr(tvd.SVHN, "split_list", table)
    splits = build_splits({"name": "svhn", "root": str(tmp_path)}, image_size=SIZE, channels=3)
    check_loaded(splits, out[0], out[1], channels=3)


# --- CIFAR: python pickles under cifar-10-batches-py / cifar-100-python ---------------------


def write_pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj))


def cifar_batch(fill: np.ndarray, label: np.ndarray, key: str) -> dict:
    data = np.ones((len(fill), 3 * 32 * 32), dtype=np.uint8) * fill[:, None]
    return {"data": data, key: label.tolist()}


def patch_cifar_md5(monkeypatch: pytest.MonkeyPatch, cls: type, folder: Path) -> None:
    """torchvision checks CIFAR files against the real md5s; use our fabricated files' md5s."""
    for attr in ("train_list", "test_list"):
        entries = [[name, md5(folder / name)] for name, _ in getattr(cls, attr)]
        monkeypatch.setattr(cls, attr, entries)
    meta = dict(cls.meta, md5=md5(folder / cls.meta["filename"]))
    monkeypatch.setattr(cls, "meta", meta)


def test_cifar10_reads_pickled_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = [f"class{k}" for k in range(10)]
    train_fill, train_label = fills(50, 10), labels_for(50)
    for b in range(5):  # five training batches of 10
        rows = slice(10 * b, 10 * (b + 1))
        batch = cifar_batch(train_fill[rows], train_label[rows], "labels")
        write_pickle(folder / f"data_batch_{b + 1}", batch)
    test_fill, test_label = fills(10, 150), labels_for(10)
    write_pickle(folder / "test_batch", cifar_batch(test_fill, test_label, "labels"))
    write_pickle(folder / "batches.meta", {"label_names": names})
    patch_cifar_md5(monkeypatch, tvd.CIFAR10, folder)
    splits = build_splits({"name": "cifar10", "root": str(tmp_path)}, image_size=SIZE, channels=3)
    assert splits.classes == tuple(names)
    check_loaded(splits, (train_fill, train_label), (test_fill, test_label), channels=3)
    gray = build_splits({"name": "cifar10", "root": str(tmp_path)}, image_size=SIZE, channels=1)
    check_loaded(gray, (train_fill, train_label), (test_fill, test_label), channels=1)


def test_cifar100_reads_fine_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    names = [f"fine{k}" for k in range(100)]
    train_fill, train_label = fills(200, 0) // 2, labels_for(200, 100)
    test_fill, test_label = fills(100, 0) // 2 + 5, labels_for(100, 100)
    write_pickle(folder / "train", cifar_batch(train_fill, train_label, "fine_labels"))
    write_pickle(folder / "test", cifar_batch(test_fill, test_label, "fine_labels"))
    write_pickle(folder / "meta", {"fine_label_names": names})
    patch_cifar_md5(monkeypatch, tvd.CIFAR100, folder)
    splits = build_splits({"name": "cifar100", "root": str(tmp_path)}, image_size=SIZE)
    assert splits.num_classes == 100 and splits.classes[42] == "fine42"
    check_loaded(splits, (train_fill, train_label), (test_fill, test_label), channels=3)


# --- missing files: one line naming the dataset, the path, and the fix ----------------------

MISSING_AT = {
    "mnist": "MNIST/raw",
    "fashion_mnist": "FashionMNIST/raw",
    "kmnist": "KMNIST/raw",
    "usps": "usps.bz2",
    "svhn": "train_32x32.mat",
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
}


@pytest.mark.parametrize("name", sorted(MISSING_AT))
def test_missing_files_raise_one_line_config_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_splits({"name": name, "root": str(tmp_path), "download": False}, image_size=SIZE)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{name}:")
    assert str(tmp_path / MISSING_AT[name]) in msg
    assert "download=true" in msg and "root=" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__


# --- image_folder: PNGs in one subfolder per class ------------------------------------------

COLOURS = {"apple": (200, 30, 30), "grass": (30, 180, 40), "sky": (40, 90, 220)}


def write_folder(root: Path, per_class: int) -> None:
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = (20 + 4 * i, 14)  # not square, sizes differ: resized and centre-cropped
            Image.new("RGB", size, colour).save(root / name / f"{i}.png")


def test_image_folder_split_from_one_folder(tmp_path: Path) -> None:
    write_folder(tmp_path / "imgs", per_class=10)
    spec = {"name": "image_folder", "root": str(tmp_path / "imgs")}
    splits = build_splits(spec, image_size=SIZE, channels=3)
    assert splits.classes == ("apple", "grass", "sky")
    assert splits.official_test_offset is None
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 6, 6)
    for part in (splits.train, splits.val, splits.test):
        assert part.images.shape[1:] == (3, SIZE, SIZE)
        for image, label in zip(part.images, part.labels, strict=True):
            colour = torch.tensor(COLOURS[splits.classes[label]], dtype=torch.uint8)
            assert torch.equal(image, colour.view(3, 1, 1).expand(3, SIZE, SIZE))
    gray = build_splits(spec, image_size=SIZE, channels=1)
    assert gray.train.images.shape[1] == 1


def test_image_folder_with_a_separate_test_folder(tmp_path: Path) -> None:
    write_folder(tmp_path / "train", per_class=5)
    write_folder(tmp_path / "test", per_class=2)
    spec = {"name": "image_folder", "root": str(tmp_path / "train"),
            "test_root": str(tmp_path / "test")}  # fmt: skip
    splits = build_splits(spec, image_size=SIZE, channels=3)
    assert splits.official_test_offset == 15
    assert len(splits.train) + len(splits.val) == 15 and len(splits.test) == 6
    assert splits.test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert min(splits.test.origin.tolist()) == 15


def test_image_folder_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as err:
        build_splits({"name": "image_folder", "root": str(missing)}, image_size=SIZE)
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    write_folder(tmp_path / "a", per_class=2)
    (tmp_path / "b" / "other").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "b" / "other" / "x.png")
    spec = {"name": "image_folder", "root": str(tmp_path / "a"), "test_root": str(tmp_path / "b")}
    with pytest.raises(ConfigError, match="differ"):
        build_splits(spec, image_size=SIZE)


# --- streamed: torchvision's raw arrays fitted per example, as fitting them whole does -------


def fabricate_noisy(name: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random pixels (so resizing and shifts have something to change) in each array layout:
    MNIST (NHW), SVHN (NCHW in torchvision), CIFAR-10 (NHWC)."""
    rng = np.random.default_rng(1)
    if name == "mnist":
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for prefix, n in (("train", 40), ("t10k", 10)):
            write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
            write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels_for(n))
    elif name == "svhn":
        for filename, n in (("train_32x32.mat", 40), ("test_32x32.mat", 10)):
            x = rng.integers(0, 256, (32, 32, 3, n)).astype(np.uint8)
            y = np.where(labels_for(n) == 0, 10, labels_for(n)).reshape(n, 1)
            scipy.io.savemat(root / filename, {"X": x, "y": y})
        table = {k: list(v) for k, v in tvd.SVHN.split_list.items()}
        for split, filename in (("train", "train_32x32.mat"), ("test", "test_32x32.mat")):
            table[split][2] = md5(root / filename)
        monkeypatch.setattr(tvd.SVHN, "split_list", table)
    else:
        folder = root / "cifar-10-batches-py"
        folder.mkdir()
        for filename in [f"data_batch_{b + 1}" for b in range(5)] + ["test_batch"]:
            data = rng.integers(0, 256, (10, 3 * 32 * 32)).astype(np.uint8)
            write_pickle(folder / filename, {"data": data, "labels": labels_for(10).tolist()})
        write_pickle(folder / "batches.meta", {"label_names": [f"c{k}" for k in range(10)]})
        patch_cifar_md5(monkeypatch, tvd.CIFAR10, folder)


SHIFTED = [{"name": "rotate", "degrees": 20}, {"name": "noise", "std": 0.2, "seed": 1}]


@pytest.mark.parametrize("name", ["mnist", "svhn", "cifar10"])
@pytest.mark.parametrize(("size", "channels"), [(20, 3), (12, 1)])
def test_torchvision_sets_streamed_give_the_in_memory_examples(
    name: str, size: int, channels: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transferlab.data import clear_cache
    from transferlab.data.streaming import ImageStream

    fabricate_noisy(name, tmp_path, monkeypatch)
    spec = {"name": name, "root": str(tmp_path), "shifts": SHIFTED}
    args = {"image_size": size, "channels": channels, "pool": "target", "target_share": 0.5}
    clear_cache()
    memory = build_splits(spec, data_mode="memory", **args)
    stream = build_splits(spec, data_mode="stream", **args)
    assert isinstance(stream.train, ImageStream) and not isinstance(memory.train, ImageStream)
    for split in ("train", "val", "test"):
        mine, theirs = getattr(stream, split), getattr(memory, split)
        assert torch.equal(mine.labels, theirs.labels)
        assert torch.equal(mine.origin, theirs.origin)
        assert torch.equal(mine.images_at(torch.arange(len(mine))), theirs.images)
        assert theirs.images.shape[1:] == (channels, size, size)


def test_torchvision_arrays_stream_in_worker_processes_and_by_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamed CIFAR batches from DataLoader workers equal the in-memory ones; `auto` streams
    when the images at the run's size (not the raw arrays) exceed `stream_above_mb`."""
    from transferlab.data import clear_cache
    from transferlab.data.streaming import ImageStream
    from transferlab.training.loaders import train_loader

    fabricate_noisy("cifar10", tmp_path, monkeypatch)
    spec = {"name": "cifar10", "root": str(tmp_path)}
    clear_cache()
    memory = build_splits(spec, image_size=24, data_mode="memory")
    stream = build_splits(spec, image_size=24, data_mode="stream")
    loaders = [
        train_loader(d.train, 8, seed=3, min_steps_per_epoch=2, workers=w)
        for d, w in ((memory, 0), (stream, 2))
    ]
    for (a, a_labels), (b, b_labels) in zip(*loaders, strict=True):
        assert torch.equal(a, b) and torch.equal(a_labels, b_labels)
    fitted_mb = 60 * 3 * 224 * 224 / 2**20  # 60 images at 224 px: 8.6 MB; raw they are 0.2 MB
    big = build_splits(spec, image_size=224, data_mode="auto", stream_above_mb=fitted_mb / 2)
    small = build_splits(spec, image_size=24, data_mode="auto", stream_above_mb=fitted_mb / 2)
    assert isinstance(big.train, ImageStream) and not isinstance(small.train, ImageStream)


def test_arrays_whose_shape_does_not_fit_their_layout_are_refused_when_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loader's bug (NHWC arrays declared NHW) is named at load, not in a DataLoader worker."""
    from transferlab.data import clear_cache, registry
    from transferlab.data.registry import BaseArrays, register_dataset

    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))  # registered here only

    @register_dataset("misshapen_arrays_for_test")
    def misshapen(*, image_size: int, channels: int) -> BaseArrays:
        images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
        return BaseArrays(images, torch.arange(4) % 2, ("a", "b"), layout="NHW")

    clear_cache()
    with pytest.raises(ValueError, match=r"shape \(4, 8, 8, 3\) for layout NHW"):
        build_splits({"name": "misshapen_arrays_for_test"}, image_size=8)
