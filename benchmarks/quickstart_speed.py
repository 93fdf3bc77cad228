"""The quickstart as a user runs it, timed: from a clean results folder, again, and analysed.

  1. `transferlab-run -m experiment=quickstart` into an empty results folder: wall time, the
     plan's own line (jobs composed, to run, skipped, seconds) and the console's line count;
  2. the same command again (every run done): the re-launch wall time;
  3. `transferlab-analyze` on the study: wall time, and whether the findings it wrote are the
     README's (the digest of `docs/quickstart/` from `scripts/quickstart_findings.py`).

W&B runs offline. The machine should be otherwise idle: the study uses both workers.

Usage: python benchmarks/quickstart_speed.py [--keep DIR] [--save]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from saved import add_save_flag, save  # noqa: E402 - benchmarks/ is on sys.path

from transferlab.analysis.digest import digest

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "docs" / "quickstart"
PLAN_LINE = re.compile(r"planned (\d+) jobs in ([\d.]+)s: (\d+) to run")


def timed(cmd: list[str], log: Path) -> tuple[float, str]:
    """(wall seconds, console output) of a command that must succeed."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    output = proc.stdout + proc.stderr
    log.write_text(output)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}; see {log}")
    return wall, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="run in this (empty) folder and keep it")
    add_save_flag(parser)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="transferlab-quickstart-"))
    results = root / "results"
    root.mkdir(parents=True, exist_ok=True)
    if results.exists():
        sys.exit(f"{results} exists: the quickstart is timed from a clean results folder")
    bin_dir = Path(sys.executable).parent
    run = [str(bin_dir / "transferlab-run"), "-m", "experiment=quickstart"]
    run.append(f"paths.results={results}")
    wall, console = timed(run, root / "first.log")
    planned = PLAN_LINE.search(console)
    relaunch, _ = timed(run, root / "again.log")
    analyze = [str(bin_dir / "transferlab-analyze"), str(results / "quickstart")]
    analysis_wall, _ = timed(analyze, root / "analyze.log")
    reproduced = digest(results / "quickstart" / "analysis") == digest(SNAPSHOT)
    figures = {
        "wall_s": round(wall, 1),
        "console_lines": len(console.splitlines()),
        "grid_points": int(planned.group(1)) if planned else None,
        "plan_s": float(planned.group(2)) if planned else None,
        "target_runs": int(planned.group(3)) if planned else None,
        "relaunch_s": round(relaunch, 1),
        "analyze_s": round(analysis_wall, 1),
        "findings_reproduced": reproduced,
    }
    print(f"quickstart from a clean folder: {wall / 60:.1f} min ({wall:.0f} s; target 12 min)")
    print(
        f"  plan: {figures['grid_points']} grid points in {figures['plan_s']} s, "
        f"{figures['target_runs']} target runs to run; console {figures['console_lines']} lines"
    )
    print(f"the same command again: {relaunch:.1f} s (target 10 s)")
    print(f"transferlab-analyze: {analysis_wall:.1f} s")
    print(f"findings equal the README's (docs/quickstart): {reproduced}")
    if args.save:
        save(args.save, "quickstart_speed", figures)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
