"""Run Hydra's own plugin test suites (`tests/hydra_suites/suites.py`) in a pytest process of
their own, and count the outcomes.

The suites reset Hydra's singletons and version base, and Hydra's plugin scan then imports its
plugin modules again: in a process shared with other tests, those tests' configs stop pickling
("not the same object as ImportlibResourcesConfigSource") and the suites see another test's
version base (jobs not changing into their folder). Their own process keeps both apart.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SUITES = Path(__file__).parents[1] / "hydra_suites" / "suites.py"
TIMEOUT = 900


def run_suites(marks: str) -> tuple[dict[str, int], str]:
    """The suites' tests selected by the marker expression `marks`, run: counts of passed,
    skipped and failed tests, and the output (asserting the run itself did not fail)."""
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", "-o", "addopts=",
        "-m", marks, str(SUITES),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=SUITES.parents[2], check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|skipped|failed)", out)}
    return counts, out
