"""Datasets of another package: registered through the `transferlab.datasets` entry point of an
installed plugin, or named by import path in a data preset, and found in joblib and submitit
workers. The plugin (tests/plugin_package) is pip-installed for this module into a folder of its
own that the sweeps get on PYTHONPATH (an installed distribution with its entry points, as in a
user's environment, without changing the venv that other tests use at the same time); the sweeps
run through the real command line: under the submitit launcher as a user types it, the others
forked from a process that imported the package (`helpers.entry`; its workers are new
interpreters either way)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST
from helpers import entry

#: One worker runs this file: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("test_data_plugins")

PLUGIN = Path(__file__).resolve().parent / "plugin_package"
PRESETS = {"stripes": "stripes", "checkers": "tl_plugin_demo.loaders:checkers"}


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The plugin installed (from a copy: building writes beside the sources) into a folder of
    its own: its code and its dist-info with the entry points."""
    work = tmp_path_factory.mktemp("plugin_site")
    shutil.copytree(PLUGIN, work / "package")
    site = work / "site"
    _pip(
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(site),
        str(work / "package"),
    )
    assert any(site.glob("transferlab_plugin_demo-*.dist-info/entry_points.txt"))
    return site


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory, plugin_site):
    """A config folder with a data preset for each of the plugin's datasets."""
    configs = tmp_path_factory.mktemp("plugin") / "configs" / "data"
    configs.mkdir(parents=True)
    for preset, name in PRESETS.items():
        (configs / f"{preset}.yaml").write_text(f'name: "{name}"\n')
    return configs.parent


def _sweep(config_dir: Path, site: Path, results: Path, launcher: str, *extra: str):
    """The sweep in an environment where the plugin is installed: as a user types it under the
    submitit launcher, forked (`helpers.entry`) under the others."""
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    command = [
        sys.executable,
        "-m",
        "transferlab.cli.run",
        "-m",
        "--config-dir",
        str(config_dir),
        *FAST,
        "init=scratch",
        "target_size=30",
        "logger=[csv]",
        "threads=1",
        f"hydra/launcher={launcher}",
        f"paths.results={results}",
        "study=plugins",
        *extra,
    ]
    return entry.run(command, env=env, timeout=600, typed=launcher == "local")


@pytest.mark.parametrize("launcher", ["parallel", "local"])
def test_plugin_datasets_train_in_joblib_and_submitit_workers(
    config_dir, plugin_site, tmp_path, launcher
):
    results = tmp_path / "results"
    done = _sweep(config_dir, plugin_site, results, launcher, "data@target=stripes,checkers")
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (results / "plugins" / "records").glob("*.json")]
    assert {r["status"] for r in records} == {"completed"}
    assert sorted(r["target"]["description"] for r in records) == sorted(PRESETS.values())
    stripes = next(r for r in records if r["target"]["name"] == "stripes")
    assert stripes["num_classes"] == 3 and stripes["metrics"]["test"]["acc"] > 1 / 3


def test_a_loader_that_cannot_be_imported_is_one_line(config_dir, plugin_site, tmp_path):
    results = tmp_path / "results"
    done = _sweep(
        config_dir,
        plugin_site,
        results,
        "parallel",
        "data@target=checkers",
        "target.name=tl_plugin_demo.loaders:nowhere",
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "tl_plugin_demo.loaders:nowhere" in lines[0]
    assert "cannot be imported" in lines[0]
    assert not list(results.glob("plugins/records/*.json"))
