"""What the source cache saves: the quickstart study run as built, then with every cache off.

With `cache=false` each target run pre-trains its own source (and rebuilds its data) instead of
sharing one checkpoint per (source, model, pre-training settings, seed). Prints wall time, the
number of source stages trained and the ratio. The full study takes a while on a laptop CPU;
`--seeds 2` runs a third of it.

    python benchmarks/sweep_cache.py [--seeds 6] [--out /tmp/sweep_cache]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run_study(out: Path, seeds: int, cache: bool) -> tuple[float, int, int]:
    """Run the quickstart sweep into `out`; return wall seconds, source trainings, target runs."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "transferlab.cli.run",
        "-m",
        "experiment=quickstart",
        f"paths.results={out}",
        f"seed=range({seeds})",
        f"cache={str(cache).lower()}",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    records = [json.loads(p.read_text()) for p in out.glob("quickstart/records/*.json")]
    sources = {r["run_id"] for r in records if r["stage"] == "source"}
    runs = out / "quickstart" / "runs"
    trained = sum(len(list((runs / rid).glob("wandb/offline-run-*"))) for rid in sources)
    targets = sum(r["stage"] == "target" for r in records)
    return seconds, trained, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("/tmp/transferlab-sweep-cache"))
    args = parser.parse_args()
    rows = []
    for label, cache in (("as built", True), ("caches off", False)):
        seconds, trained, targets = run_study(args.out / label.replace(" ", "_"), args.seeds, cache)
        rows.append((label, seconds, trained, targets))
        print(
            f"{label:>10}: {seconds:7.1f} s wall, {trained:4d} source stages trained, "
            f"{targets} target runs",
            flush=True,
        )
    (_, cached_s, cached_n, _), (_, off_s, off_n, _) = rows
    print(
        f"caches off / as built: {off_s / cached_s:.2f}x wall time, "
        f"{off_n / max(cached_n, 1):.1f}x source stages"
    )


if __name__ == "__main__":
    main()
