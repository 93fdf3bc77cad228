"""Benchmark figures kept for the README's performance table.

A benchmark run with `--save` writes what it printed, as numbers, to
`docs/performance/<benchmark>.json`, with where and when it was measured;
`scripts/performance_table.py` renders the README's table from those files, so the table holds
measured figures only, and says which targets they miss.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

FIGURES_DIR = Path(__file__).resolve().parents[1] / "docs" / "performance"


def add_save_flag(parser: argparse.ArgumentParser) -> None:
    """`--save`: also write the figures to docs/performance/ (or to `--save DIR`)."""
    parser.add_argument(
        "--save",
        nargs="?",
        type=Path,
        const=FIGURES_DIR,
        metavar="DIR",
        help="also write the figures as JSON (default folder: docs/performance/)",
    )


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=FIGURES_DIR.parent,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    """Where a figure was measured: CPU cores, GPU, torch version."""
    return {
        "cpu_cores": os.cpu_count(),
        "platform": platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def save(folder: Path, name: str, figures: dict[str, Any]) -> Path:
    """Write `figures` (plain numbers and strings) as `<folder>/<name>.json`, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    record = {
        "benchmark": name,
        "measured": datetime.date.today().isoformat(),
        "commit": _commit(),
        "machine": machine(),
        "figures": figures,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    print(f"figures saved to {path}")
    return path
