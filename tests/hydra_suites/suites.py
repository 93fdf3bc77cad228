"""Hydra's own plugin test suites (`hydra.test_utils.launcher_common_tests`) run against the
project's sweeper and launchers, on Hydra's example app: the sweeper behaves as Hydra's basic
sweeper, and the submitit launchers as Hydra's, wherever the project does not mean otherwise.

The example app is not a transferlab study, so the sweeper runs with `checks: false` (no plan,
no up-front checks, no cohorts: those are the intended differences, docs/sweeps.md). The Slurm
launcher runs the launcher suite only where a Slurm is up (`scripts/slurm_local.sh`).

Not collected with the other tests: `tests/helpers/hydra_suites.py` runs this file in a pytest
process of its own (see there why), for `tests/test_hydra_suites.py` (all but the Slurm launcher)
and `tests/test_slurm.py` (the Slurm launcher, with the other Slurm tests).
"""

from __future__ import annotations

import pytest
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from test_slurm import NO_SLURM, PARTITION, REQUIRED

#: The project's sweeper, as a foreign app uses it.
SWEEPER = ["hydra/sweeper=transferlab", "hydra.sweeper.checks=false"]
#: A local Slurm's jobs: no GPU, one core.
SLURM = [
    f"hydra.launcher.partition={PARTITION}",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
]


@pytest.mark.parametrize(
    "launcher_name, overrides",
    [
        pytest.param("basic", SWEEPER, id="basic"),
        pytest.param("transferlab_local", [*SWEEPER, "hydra.launcher.timeout_min=3"], id="local"),
        pytest.param(
            "transferlab_slurm",
            [*SWEEPER, *SLURM, "hydra.launcher.timeout_min=3"],
            id="slurm",
            marks=[
                pytest.mark.slurm,
                pytest.mark.skipif(PARTITION is None and not REQUIRED, reason=NO_SLURM),
            ],
        ),
    ],
)
class TestProjectSweeperAndLaunchers(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "launcher_name, overrides", [("basic", [*SWEEPER, "hydra.sweeper.max_batch_size=2"])]
)
class TestProjectSweeperInBatches(BatchedSweeperTestSuite):
    pass


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        (
            {
                "defaults": [
                    {"override hydra/launcher": "transferlab_local"},
                    {"override hydra/sweeper": "transferlab"},
                    "_self_",
                ],
                "hydra": {"launcher": {"timeout_min": 2}, "sweeper": {"checks": False}},
            },
            ["-m"],
        )
    ],
)
class TestProjectPluginsInApps(IntegrationTestSuite):
    pass
