"""A parallel sweep's workers start while the grid is planned (`sweep/warmup.py`): the
launcher's jobs then run in those same processes, already past their imports, and a warm-up
that is cancelled (a bad grid, a signal, nothing left to run) leaves no process behind. Real
joblib (loky) workers and Hydra's own joblib launcher; the whole sweep is in
test_sweep_reliability's parallel-launcher test."""

from __future__ import annotations

import os
import time

import psutil
import pytest
from conftest import CONF_DIR
from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from joblib import Parallel, delayed

from transferlab.sweep import warmup
from transferlab.sweep.warmup import WARM_MODULES, WorkerWarmUp, import_modules, joblib_settings


def _shipped_settings() -> dict:
    """The shipped parallel launcher's settings (conf/hydra/launcher/parallel.yaml on joblib's),
    as Hydra composes them for `hydra/launcher=parallel`."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", ["hydra/launcher=parallel"], return_hydra_config=True)
    settings = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    settings.pop("_target_")
    return settings


LAUNCHER = _shipped_settings()
WAIT_S = 60


def _workers() -> set[int]:
    """This process's loky workers alive now (its other children are not joblib's)."""
    return {
        child.pid
        for child in psutil.Process().children()
        if child.is_running() and "LokyProcess" in " ".join(child.cmdline())
    }


def _wait_for(condition, timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def launcher():
    """Hydra's joblib launcher with the shipped settings; its workers are gone afterwards."""
    yield JoblibLauncher(**LAUNCHER)
    warm = WorkerWarmUp(JoblibLauncher(**LAUNCHER))
    warm.start()
    warm.cancel()
    assert _wait_for(lambda: not _workers())


def test_settings_are_the_launchers_own():
    settings = {**LAUNCHER, "backend": "loky"}
    process_joblib_cfg(settings)
    assert joblib_settings(JoblibLauncher(**LAUNCHER)) == settings
    assert joblib_settings(object()) is None  # another launcher: nothing to warm up
    WorkerWarmUp(object()).start()  # a no-op there
    assert not _workers()


def test_the_launchers_jobs_run_in_the_warmed_workers(launcher):
    warm = WorkerWarmUp(launcher)
    warm.start()
    assert _wait_for(lambda: len(_workers()) == LAUNCHER["n_jobs"])
    warmed = _workers()
    warm.finish()
    # The launcher's own call, as Hydra's joblib launcher makes it: same pool, same processes.
    pids = Parallel(**joblib_settings(launcher))(delayed(os.getpid)() for _ in range(8))
    assert set(pids) <= warmed and _workers() == warmed


def test_a_cancelled_warm_up_leaves_no_worker(launcher):
    warm = WorkerWarmUp(launcher)
    warm.start()
    assert _wait_for(lambda: len(_workers()) == LAUNCHER["n_jobs"])
    warm.cancel()  # while they import: nothing waits for the imports to end
    assert _wait_for(lambda: not _workers(), timeout=10)
    warm.cancel()  # twice: a no-op


def _loaded(modules: tuple[str, ...]) -> bool:
    import sys

    return all(name in sys.modules for name in modules)


def test_warmed_workers_hold_what_a_run_imports(launcher):
    """W&B's launch inputs included: W&B imports them when a process starts its first run."""
    warm = WorkerWarmUp(launcher)
    warm.start()
    warm.finish()
    settings = joblib_settings(launcher)
    assert warmup.WANDB_LAUNCH_INPUTS in WARM_MODULES
    assert all(Parallel(**settings)(delayed(_loaded)(WARM_MODULES) for _ in range(4)))


def test_an_optional_module_that_fails_to_import_is_skipped(monkeypatch):
    monkeypatch.setattr(warmup, "OPTIONAL_MODULES", frozenset({"json.no_such_module"}))
    assert import_modules(("json.no_such_module", "json")) == os.getpid()
    with pytest.raises(ModuleNotFoundError):
        import_modules(("transferlab.no_such_module",))
