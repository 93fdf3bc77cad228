"""Every command line of the README runs here, at a tiny scale, or composes and passes every
check a run makes where training would be too slow (a GPU, DDP on 4 devices, a large grid), so
the README cannot drift from the code. A command this file does not know how to try fails."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from conftest import CONF_DIR, REPO
from helpers import entry
from helpers.simulate import SimulatedStudy, simulate_records, write_records

from transferlab.training.checks import check_run

pytestmark = pytest.mark.slow

README = REPO / "README.md"
# Appended to a single run that trains here: fewer epochs and examples, CSV logging only.
TINY = [
    "train.epochs=1",
    "pretrain.epochs=1",
    "source_size=100",
    "logger=[csv]",
    "trainer.enable_progress_bar=false",
]
# Settings that need hardware this machine lacks: composed and checked, not trained.
NEEDS_HARDWARE = ("trainer=gpu", "trainer=ddp")
# Grids up to this many jobs are checked job by job; larger ones value by value.
MAX_GRID = 200
# Commands run by other tests (from a fresh install), by CI itself, or the setup script.
ELSEWHERE = {
    "--config-dir": "tests/test_package_install.py runs it from a fresh venv",
    "my_project": "tests/test_package_install.py runs it from a project folder of its own",
    "scripts/setup.sh": "CI runs it (.ci/run)",
    "scripts/slurm_local.sh": "CI runs it (.ci/run); tests/test_slurm.py runs jobs on it",
    "pytest": "CI runs it (.ci/run)",
    "transferlab-eval": "tests/test_evaluate.py runs it with both forms of --on on a real study",
    "transferlab-export": "tests/test_export.py runs it on a real study and trains from its files",
    "transferlab-reproduce": "tests/test_reproduce_cli.py runs --list, every recipe at smoke "
    "scale and bad input; a full scale is a study of 9-19 minutes",
}


def readme_commands() -> list[list[str]]:
    """Each command of the README's bash blocks, as argv (`a && b` gives two)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                argv = shlex.split(part, comments=True)
                if argv:
                    commands.append(argv)
    return commands


def _program(argv: list[str]) -> str:
    for token in argv:
        name = Path(token).name
        if name in ("transferlab-run", "transferlab-analyze"):
            return name
    return ""


def _elsewhere(argv: list[str]) -> str | None:
    text = " ".join(argv)
    return next((why for key, why in ELSEWHERE.items() if key in text), None)


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    import transferlab.cli.run  # noqa: F401 - registers the tl.uid resolver

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _grid(args: list[str]) -> list[list[str]]:
    """The jobs of a sweep command (with the experiment's own grid), or each swept value once
    against the first of the others when the product is larger than MAX_GRID."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    import transferlab.cli.run  # noqa: F401

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        plain = [a for a in args if "," not in a.split("=", 1)[-1] and "range(" not in a]
        base = compose(config_name="config", overrides=plain, return_hydra_config=True)
    params = [f"{k}={v}" for k, v in (base.hydra.sweeper.params or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *args])
    axes = []
    for override in parsed:
        key = override.get_key_element()
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else None
        values = values or [override.get_value_element_as_str()]
        axes.append([f"{key}={v}" for v in values])
    jobs = [[]]
    for axis in axes:
        jobs = [[*job, value] for job in jobs for value in axis]
    if len(jobs) <= MAX_GRID:
        return jobs
    first = [axis[0] for axis in axes]
    return [[*first[:i], value, *first[i + 1 :]] for i, axis in enumerate(axes) for value in axis]


def test_every_readme_command_is_covered():
    commands = readme_commands()
    assert len(commands) >= 10  # the quick start, the tour, sweeps, your own configs
    for argv in commands:
        assert _program(argv) or _elsewhere(argv), f"README command nobody tries: {argv}"


def _exported_weights(cfg, tmp_path: Path) -> None:
    """An init=file weights file a recipe expects under the results folder, where
    `transferlab-export` would have written it (tests/test_export.py runs the export itself):
    the run's model with its own weights, so the checks load a real file."""
    import timm

    from transferlab.models.weights import write_weights_file

    path = Path(str(cfg.init_path)) if cfg.init == "file" and cfg.init_path else None
    if path is None or path.exists() or tmp_path not in path.parents:
        return
    write_weights_file(path, timm.create_model(cfg.model.name).state_dict(), {})


RUNS = [
    argv
    for argv in readme_commands()
    if _program(argv) == "transferlab-run" and not _elsewhere(argv)
]


@pytest.mark.parametrize("argv", RUNS, ids=[" ".join(a[1:]) or "default" for a in RUNS])
def test_readme_run_command(argv, tmp_path):
    args = argv[1:]
    multirun = "-m" in args
    args = [a for a in args if a != "-m"]
    results = f"paths.results={tmp_path / 'results'}"
    if multirun:
        jobs = _grid([*args, results])
        for job in jobs:
            cfg = _compose(job)
            _exported_weights(cfg, tmp_path)
            check_run(cfg)
        return
    if any(a.startswith(NEEDS_HARDWARE) for a in args):
        check_run(_compose([*args, results]))
        return
    env = {**os.environ, "TRANSFERLAB_DATA": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "transferlab.cli.run", *TINY, *args, results]
    proc = entry.run(cmd, timeout=600, typed=not args, env=env)  # the first as typed
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert list((tmp_path / "results").glob("*/records/*.json"))


ANALYSES = [argv for argv in readme_commands() if _program(argv) == "transferlab-analyze"]


@pytest.mark.parametrize("argv", ANALYSES, ids=[" ".join(a[1:]) for a in ANALYSES])
def test_readme_analyze_command(argv, tmp_path):
    # The folder the command names, filled with a simulated study of that name.
    folder = Path(argv[-1])
    records = simulate_records(
        SimulatedStudy(study=folder.name, target_sizes=(20,), freeze_depths=(0,), seeds=3)
    )
    write_records(records, tmp_path / folder.parent)
    cmd = [sys.executable, "-m", "transferlab.cli.analyze", *argv[1:-1], "--no-shift", str(folder)]
    proc = entry.run(cmd, timeout=600, typed=argv == ANALYSES[0], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / folder / "analysis" / "report.md").is_file()
