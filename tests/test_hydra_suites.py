"""Hydra's own plugin test suites against the project's sweeper and launchers
(`tests/hydra_suites/suites.py`), run in a pytest process of their own.

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

import pytest
from test_slurm import PARTITION

SUITES = Path(__file__).parent / "hydra_suites" / "suites.py"
TIMEOUT = 900
#: Tests of the suites that need no Slurm, and those that run on the Slurm launcher.
LOCAL_TESTS, SLURM_TESTS = 30, 9

#: Not beside the Slurm tests: those count the cluster's jobs (`slurm_cluster`, conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]


def test_hydra_plugin_suites_pass_against_the_project_sweeper_and_launchers():
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", "-o", "addopts=",
        str(SUITES),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=SUITES.parents[2], check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|skipped|failed)", out)}
    expected = LOCAL_TESTS + (SLURM_TESTS if PARTITION is not None else 0)
    assert counts.get("passed") == expected and not counts.get("failed"), out[-2000:]
