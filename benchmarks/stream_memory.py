"""Memory and speed of a large image folder, decoded whole in memory or streamed from disk.

Fabricates image folders (JPEG and PNG, 10 classes, sides between 48 and 128 px, every aspect
ratio; written once under `--cache`), then for each folder size and each path measures, in a
fresh process each:

  setup s      listing, splits and (memory path) decoding every image, as a run does first
  samples/s    the training loader's rate over `--batches` batches of 64 (`data_workers`
               workers decode a stream; in-memory batches are indexed), and with `--device`
               the rate of training steps (timm `--model`, forward and backward) fed by it
  peak RSS     of the process itself (and its RSS before any data, torch imported) and of
               its largest loader worker

and the time a process takes to fingerprint the largest folder (what a run's identity reads)
with nothing remembered and, in a later process, with the first one's fingerprint remembered
(`store.fingerprint`: listed and stat'ed, not read); then runs a small study on the largest
folder through `transferlab-run -m` (streamed, joblib workers; fingerprint cache empty at
start) and reports its wall time and the peak RSS of its largest process. A streamed
dataset's memory stays bounded by the batch and the workers: the figures at two folder sizes
show it next to the in-memory path's, which grows with the folder.

Usage: python benchmarks/stream_memory.py [--images 5000 50000] [--image-size 64]
       [--batches 100] [--workers 2] [--device cpu|cuda] [--model test_resnet] [--no-study]
       [--save]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from saved import add_save_flag, save  # noqa: E402 - benchmarks/ is on sys.path

CLASSES = 10
SIDE_RANGE = (48, 128)
#: Every tenth image is a PNG, the rest JPEGs.
PNG_EVERY = 10
JPEG_QUALITY = 90
BATCH = 64
KIB_PER_MIB = 1024
PATHS = ("memory", "stream")
#: The study: scratch runs of a few seeds and sizes on the folder, one epoch each.
STUDY = [
    "init=scratch",
    "model=test_resnet",
    "image_size=32",
    "target_size=500,2000",
    "seed=0,1",
    "train.epochs=1",
    "train.min_steps_per_epoch=1",
    "logger=[csv]",
    "data_mode=stream",
    "hydra/launcher=parallel",
    "hydra.launcher.n_jobs=2",
    "threads=1",
]


def fabricate(root: Path, images: int, seed: int = 0) -> Path:
    """`images` files in `CLASSES` class folders (written once: a finished folder is kept)."""
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    for c in range(CLASSES):
        (root / f"class_{c:02d}").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        c = i % CLASSES
        width, height = rng.integers(*SIDE_RANGE, size=2)
        pixels = rng.integers(0, 80, (height, width, 3)) + 16 * c
        image = Image.fromarray(pixels.astype(np.uint8))
        name = root / f"class_{c:02d}" / f"{i:06d}"
        if i % PNG_EVERY == 0:
            image.save(name.with_suffix(".png"))
        else:
            image.save(name.with_suffix(".jpg"), quality=JPEG_QUALITY)
    done.write_text("")
    return root


def _peak_mib(who: int) -> float:
    return round(resource.getrusage(who).ru_maxrss / KIB_PER_MIB, 1)


def _proc_mib(pid: int | str, key: str) -> float:
    """A memory figure of a live process from /proc (VmRSS now, VmHWM its peak), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return round(int(line.split()[1]) / KIB_PER_MIB, 1)
    raise KeyError(key)


def measure_path(args: argparse.Namespace) -> dict[str, float]:
    """One path on one folder, in this (fresh) process: setup, loader rate, peak RSS."""
    import torch

    from transferlab.data import build_splits
    from transferlab.training.loaders import train_loader

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    baseline = _proc_mib("self", "VmRSS")  # torch and transferlab imported, no data yet
    started = time.perf_counter()
    spec = {"name": "image_folder", "root": str(args.root)}
    splits = build_splits(spec, image_size=args.image_size, data_mode=args.path)
    setup_s = time.perf_counter() - started
    workers = args.workers if args.path == "stream" else 0
    loader = train_loader(splits.train, BATCH, 0, args.batches + 1, workers)
    step = _training_step(args) if args.device else None
    batches = iter(loader)
    first = next(batches)  # workers started, first batch decoded
    if step is not None:  # warm-up: CUDA context, kernels, cuDNN's choices
        step(*first)
        if args.device == "cuda":
            torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.batches):
        images, labels = next(batches)
        if step is not None:
            step(images, labels)
    if step is not None and args.device == "cuda":
        torch.cuda.synchronize()
    rate = args.batches * BATCH / (time.perf_counter() - started)
    workers = [w.pid for w in getattr(batches, "_workers", [])]
    return {
        "examples": len(splits.train) + len(splits.val) + len(splits.test),
        "setup_s": round(setup_s, 2),
        "samples_per_s": round(rate, 1),
        "baseline_mib": baseline,
        "main_peak_mib": _peak_mib(resource.RUSAGE_SELF),
        "worker_peak_mib": max((_proc_mib(pid, "VmHWM") for pid in workers), default=0.0),
    }


def fingerprint_seconds(root: Path, cache: Path) -> float:
    """Seconds a fresh process takes to fingerprint `root`, remembering in `cache` (torchvision
    imported first, as in a run)."""
    code = (
        "import sys, time, torchvision; "
        "from transferlab.store.fingerprint import folder_fingerprint; "
        "t = time.perf_counter(); folder_fingerprint(sys.argv[1]); "
        "print(time.perf_counter() - t)"
    )
    env = {**os.environ, "TRANSFERLAB_CACHE": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=True, env=env
    )
    return round(float(out.stdout.strip().splitlines()[-1]), 2)


def _training_step(args: argparse.Namespace):
    """A forward and backward pass of a timm model on each batch, on `args.device`."""
    import timm
    import torch

    from transferlab.models.inputs import prepare

    device = torch.device(args.device)
    model = timm.create_model(args.model, num_classes=CLASSES).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    stats = ((0.5,) * 3, (0.25,) * 3)

    def step(images, labels) -> None:
        images, labels = images.to(device, non_blocking=True), labels.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(prepare(images, stats)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def run_child(args: argparse.Namespace, root: Path, path: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", path, "--root", str(root)]
    cmd += ["--image-size", str(args.image_size), "--batches", str(args.batches)]
    cmd += ["--workers", str(args.workers), "--model", args.model]
    cmd += ["--device", args.device] if args.device else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_study(root: Path) -> dict[str, float]:
    """The study on the folder through the real command line; peak RSS of its largest process
    (the launcher or a joblib worker), measured in a wrapper that only waits for it."""
    with tempfile.TemporaryDirectory() as results:
        cmd = [sys.executable, "-m", "transferlab.cli.run", "-m", *STUDY]
        cmd += ["data@target=image_folder", f"target.root={root}", f"paths.results={results}"]
        wrapper = [sys.executable, __file__, "--wrap", "--", *cmd]
        env = {**os.environ, "TRANSFERLAB_CACHE": str(Path(results) / "fingerprints")}
        started = time.perf_counter()
        out = subprocess.run(wrapper, capture_output=True, text=True, check=True, env=env)
        wall = time.perf_counter() - started
        runs = len(list(Path(results).glob("*/records/*.json")))
    return {
        "study_runs": runs,
        "study_s": round(wall, 1),
        "study_peak_mib": json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"],
    }


def wrap(cmd: list[str]) -> None:
    """Run `cmd`, then print the peak RSS of its largest process (it and every descendant)."""
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(json.dumps({"peak_mib": _peak_mib(resource.RUSAGE_CHILDREN)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tl-folders")
    parser.add_argument("--no-study", action="store_true")
    parser.add_argument("--child", choices=PATHS)
    parser.add_argument("--root", type=Path)
    parser.add_argument("--wrap", action="store_true")
    parser.add_argument("cmd", nargs="*")
    add_save_flag(parser)
    args = parser.parse_args()
    if args.wrap:
        return wrap(args.cmd)
    if args.child:
        args.path = args.child
        print(json.dumps(measure_path(args)))
        return None
    figures: dict[str, float] = {"image_size": args.image_size, "workers": args.workers}
    if args.device:
        figures["device"], figures["model"] = args.device, args.model
    for count in args.images:
        started = time.perf_counter()
        root = fabricate(args.cache / f"folder-{count}", count)
        print(f"{count:,} images under {root} ({time.perf_counter() - started:.0f} s to write)")
        for path in PATHS:
            got = run_child(args, root, path)
            print(f"  {path:6s} {json.dumps(got)}")
            figures.update({f"{path}_{count}_{k}": v for k, v in got.items()})
    largest = args.cache / f"folder-{max(args.images)}"
    with tempfile.TemporaryDirectory() as cache:
        first, later = (fingerprint_seconds(largest, Path(cache)) for _ in range(2))
    print(f"fingerprint of {max(args.images):,} images: first process {first} s, later {later} s")
    figures.update(fingerprint_first_s=first, fingerprint_later_s=later)
    if not args.no_study:
        study = run_study(args.cache / f"folder-{max(args.images)}")
        print(f"study on {max(args.images):,} images, streamed: {json.dumps(study)}")
        figures.update(study, study_images=max(args.images))
    if args.save:
        save(args.save, "stream_memory" + ("_gpu" if args.device == "cuda" else ""), figures)
    return None


if __name__ == "__main__":
    main()
