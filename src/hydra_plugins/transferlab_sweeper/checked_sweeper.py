"""Hydra's basic sweeper, with every job of the grid checked before the first one starts.

A bad value anywhere in a grid (`-m target_size=20,-5`) would otherwise be found only when its
job starts, after other jobs have trained. Each job's config is composed exactly as its launcher
will compose it and given the same checks as a single run (`transferlab.training.checks`); the
first problem ends the sweep with one line naming the job and the problem, before anything
trains. Hydra loads plugins from the `hydra_plugins` package only, hence this module's place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, open_dict

log = logging.getLogger("transferlab.sweep")


def _job_config(config: DictConfig) -> DictConfig:
    """A job's config as its task function receives it (without the `hydra` node)."""
    job = config.copy()
    with open_dict(job):
        job.pop("hydra", None)
    return job


class CheckedSweeper(BasicSweeper):
    """`BasicSweeper` that checks the whole grid first (see the module docstring)."""

    def sweep(self, arguments: list[str]) -> Any:
        self.check_grid(arguments)
        return super().sweep(arguments)

    def check_grid(self, arguments: list[str]) -> None:
        """Compose and check every job; raise the first problem as a GridError."""
        from hydra.errors import HydraException

        from transferlab.errors import ConfigError, GridError
        from transferlab.training.checks import check_run
        from transferlab.training.config_schema import composition_error

        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        swept = {o.get_key_element() for o in overrides if o.is_sweep_override()}
        started, jobs = time.perf_counter(), 0
        for batch in self.split_arguments(overrides, None):
            for job in batch:
                jobs += 1
                try:
                    check_run(_job_config(self._compose(job)))
                except (HydraException, ValueError) as exc:  # ValueError: a ConfigError too
                    if not isinstance(exc, ConfigError):
                        exc = composition_error(exc, self.config)
                    point = " ".join(o for o in job if o.split("=", 1)[0] in swept)
                    raise GridError(f"sweep job {jobs} ({point}): {exc}") from None
        log.info("checked %d jobs in %.1fs", jobs, time.perf_counter() - started)

    def _compose(self, job: Sequence[str]) -> DictConfig:
        assert self.config is not None and self.hydra_context is not None
        return self.hydra_context.config_loader.load_sweep_config(
            master_config=self.config, sweep_overrides=list(job)
        )

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Every job was composed and checked by `check_grid` before the first batch."""
