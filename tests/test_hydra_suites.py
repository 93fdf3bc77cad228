"""Hydra's own plugin test suites against the project's sweeper and its local launchers
(`tests/hydra_suites/suites.py`), run in a pytest process of their own. Their Slurm launcher
part runs with the other Slurm tests (tests/test_slurm.py), one at a time on the cluster."""

from __future__ import annotations

import pytest
from helpers.hydra_suites import run_suites

#: Tests of the suites that need no Slurm.
LOCAL_TESTS = 30

pytestmark = pytest.mark.slow


def test_hydra_plugin_suites_pass_against_the_project_sweeper_and_launchers():
    counts, out = run_suites("not slurm")
    assert counts.get("passed") == LOCAL_TESTS and not counts.get("failed"), out[-2000:]
