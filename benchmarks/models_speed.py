"""Forward+backward time of each model preset (conf/model/*.yaml) on a CPU batch.

Usage: python benchmarks/models_speed.py [--batch 64] [--sizes 16 32] [--repeats 5] [--save]
       [presets]
Prints one row per preset and image size: parameters, median and best seconds per step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import yaml
from saved import add_save_flag, save  # noqa: E402 - benchmarks/ is on sys.path

from transferlab.models import create_model

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"
NUM_CLASSES = 10
IN_CHANS = 3
WARMUP_STEPS = 2


def presets() -> dict[str, dict]:
    """name -> {name, kwargs} for every YAML preset in conf/model."""
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted(CONF_DIR.glob("*.yaml"))}


def step_seconds(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Wall time of one forward + cross-entropy + backward pass."""
    start = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("only", nargs="*", help="preset names (default: all)")
    add_save_flag(parser)
    args = parser.parse_args()
    figures: dict[str, float] = {"batch": args.batch}
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch}")
    print(f"{'preset':<18}{'model':<16}{'px':>4}{'params':>11}{'median s':>10}{'best s':>9}")
    for key, spec in presets().items():
        if args.only and key not in args.only:
            continue
        for size in args.sizes:
            kwargs = dict(spec.get("kwargs") or {})
            try:
                model, _ = create_model(
                    spec["name"],
                    num_classes=NUM_CLASSES,
                    in_chans=IN_CHANS,
                    image_size=size,
                    **kwargs,
                )
                model.train()
                images = torch.rand(args.batch, IN_CHANS, size, size)
                labels = torch.randint(0, NUM_CLASSES, (args.batch,))
                for _ in range(WARMUP_STEPS):
                    step_seconds(model, images, labels)
                times = [step_seconds(model, images, labels) for _ in range(args.repeats)]
            except Exception as exc:  # report and go on to the next preset
                print(f"{key:<18}{spec['name']:<16}{size:>4}  failed: {str(exc).splitlines()[0]}")
                continue
            params = sum(p.numel() for p in model.parameters())
            print(
                f"{key:<18}{spec['name']:<16}{size:>4}{params:>11,}"
                f"{statistics.median(times):>10.3f}{min(times):>9.3f}"
            )
            figures[f"{key}_{size}px_ms"] = round(1000 * statistics.median(times), 1)
            figures[f"{key}_params"] = params
    if args.save:
        save(args.save, "models_speed", figures)


if __name__ == "__main__":
    main()
