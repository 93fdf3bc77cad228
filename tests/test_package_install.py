"""transferlab as researchers install it: a wheel (not an editable checkout) in a fresh virtual
environment, run from another folder with a config folder of the researcher's own.

The wheel is built from a copy of the sources. The fresh environment gets its third-party
packages (torch, Lightning, ...) through a .pth file pointing at this environment's
site-packages, since nothing can be downloaded here; transferlab itself comes only from the
wheel (the test checks where it was imported from).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: One worker runs this file: its module fixture is built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_package_install")]

USER_DATA_PRESET = """\
# a researcher's own dataset preset: digits seen through a blur
name: digits
shifts:
  - {name: blur, sigma: 0.8}
"""
USER_STUDY = """\
# @package _global_
# a researcher's own study recipe, kept in their own repository
defaults:
  - override /data@target: my_blurred_digits
study: tiny
init: scratch
image_size: 16
target_size: 20
threads: 1
train: {epochs: 1, min_steps_per_epoch: 2}
trainer: {enable_progress_bar: false}
logger: {}
hydra:
  sweeper:
    params:
      seed: 0,1
"""


def _run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env={**environ, **env}
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory) -> Path:
    """A fresh venv with transferlab installed from a freshly built wheel."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    # src/transferlab/conf links to the top-level conf/: the copy holds the files themselves
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip"]
    _run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", "dist", str(source)], work
    )
    wheels = list((work / "dist").glob("transferlab-*.whl"))
    assert len(wheels) == 1
    env = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)], work)
    python = env / "bin" / "python"
    _run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheels[0])],
        work,
    )
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "_third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def test_the_wheel_ships_the_default_configs(fresh_env):
    where = _run(
        [
            str(fresh_env / "bin" / "python"),
            "-c",
            "import transferlab.cli.run as r; print(r.__file__); print(r.CONF_DIR)",
        ],
        fresh_env,
    ).stdout.split()
    assert where[0].startswith(str(fresh_env)), "transferlab was not imported from the wheel"
    conf = Path(where[1])
    assert (conf / "config.yaml").is_file() and (conf / "experiment" / "quickstart.yaml").is_file()


def test_a_study_from_a_config_folder_of_ones_own(fresh_env, tmp_path):
    project = tmp_path / "my_project"
    (project / "configs" / "data").mkdir(parents=True)
    (project / "configs" / "experiment").mkdir()
    (project / "configs" / "data" / "my_blurred_digits.yaml").write_text(USER_DATA_PRESET)
    (project / "configs" / "experiment" / "mine.yaml").write_text(USER_STUDY)
    run = str(fresh_env / "bin" / "transferlab-run")
    proc = _run(
        [run, "-m", "--config-dir", "configs", "experiment=mine", "paths.results=results"],
        project,
        WANDB_MODE="offline",
        HF_HUB_OFFLINE="1",
    )
    records = [json.loads(p.read_text()) for p in (project / "results/tiny/records").glob("*.json")]
    assert sorted(r["seed"] for r in records) == [0, 1], proc.stdout[-2000:]
    for record in records:
        assert record["status"] == "completed"
        assert record["target"]["description"] == "digits+blur(sigma=0.8)"
        assert record["versions"]["transferlab"] != "missing"
    # a preset name that exists in neither folder is still one line naming the choices
    bad = subprocess.run(
        [run, "--config-dir", "configs", "data@target=nope", "paths.results=results"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "my_blurred_digits" in bad.stderr and "shapes" in bad.stderr


def test_the_wheel_reproduces_a_recipe_outside_the_checkout(fresh_env, tmp_path):
    """The recipes ship inside the wheel with their own configs (a study's experiment/, a
    recipe's method presets): listed, and one run at smoke scale to its claims table."""
    reproduce = str(fresh_env / "bin" / "transferlab-reproduce")
    listed = _run([reproduce, "--list"], tmp_path)
    from transferlab.reproduce.recipes import recipe_names

    assert all(name + " " in listed.stdout for name in recipe_names())
    (installed,) = fresh_env.glob("lib/python*/site-packages/transferlab/experiments")
    assert (installed / "lee2023" / "method" / "surgical_first.yaml").is_file()
    recipe = "hernandez2021"  # the smallest smoke grid with a config of its own
    proc = _run(
        [reproduce, recipe, "--scale", "smoke", "logger=[csv]"],
        tmp_path,
        WANDB_MODE="offline",
        HF_HUB_OFFLINE="1",
    )
    claims = tmp_path / "results" / "smoke" / recipe / "claims.csv"
    assert claims.is_file(), proc.stdout[-2000:]
    assert "smoke: not checked" in claims.read_text()
