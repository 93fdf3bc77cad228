"""`transferlab-reproduce` through its console entry point: the recipe list, bad input refused
before any training (one line, exit 2, nothing written), and every shipped recipe run at smoke
scale through the real sweep, analysis and claims table (no verdict at smoke scale). The list
runs as a user types it; the others in processes forked from one that imported the package
(`helpers.entry`); test_package_install runs a recipe from the installed wheel as typed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from helpers.entry import run_entry
from nbclient import NotebookClient

from transferlab.cli.reproduce import check_before_training, sweep_overrides
from transferlab.reproduce.grid import with_config_dir
from transferlab.reproduce.recipes import load_recipe, recipe_names
from transferlab.reproduce.verdicts import SMOKE

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "reproduction.ipynb"


#: Longest a recipe's command may take here (a smoke run takes well under a minute).
TIMEOUT_S = 900
#: The recipe whose smoke test also logs its claims to W&B (offline) and reads them back.
WANDB_RECIPE = "wang2019"
#: A recipe with its own config folder, whose smoke test also adds the user's own folder to
#: Hydra's search path, with a launcher preset from it (as a cluster's would be).
USER_CONFIG_RECIPE = "kumar2022"


def _reproduce(*args: str, cwd: Path, forked: bool = True) -> subprocess.CompletedProcess:
    """`transferlab-reproduce ARGS` in a process of its own: forked from one that imported the
    package once (`helpers.entry`: ten recipes do not import torch and Lightning ten times), or
    (`forked=False`) as a user types it."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    if forked:
        command = "transferlab-reproduce"
        return run_entry([*args, "logger=[csv]"], env, cwd, command=command, timeout=TIMEOUT_S)
    command = [sys.executable, "-m", "transferlab.cli.reproduce", *args, "logger=[csv]"]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=cwd, env=env
    )


def test_the_list_names_every_recipe_and_its_paper(tmp_path: Path):
    done = _reproduce("--list", cwd=tmp_path, forked=False)
    assert done.returncode == 0, done.stderr
    for name in recipe_names():
        line = next(x for x in done.stdout.splitlines() if x.startswith(name + " "))
        assert load_recipe(name).paper[:20] in line and "not run" in line


@pytest.mark.parametrize(
    "args, named",
    [
        (["yosinski"], "unknown recipe 'yosinski'"),
        (["yosinski2014", "--scale", "smoke", "freeze_depth=0,5"], "freeze_depth=1"),
        (["wang2019", "--scale", "smoke", "data@source=shapes"], "digits+label_permutation"),
        (["wang2019", "--scale", "smoke", "frieze_depth=1"], "frieze_depth"),
    ],
)
def test_bad_input_is_one_line_before_training(tmp_path: Path, args, named):
    done = _reproduce(*args, "--results", str(tmp_path / "results"), cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert named in lines[0] and lines[0].startswith("transferlab-reproduce: error:")
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
@pytest.mark.parametrize("recipe", recipe_names())
def test_every_recipe_runs_at_smoke_scale(tmp_path: Path, recipe: str):
    extra = _user_config(tmp_path / "conf") if recipe == USER_CONFIG_RECIPE else []
    done = _reproduce(recipe, "--scale", "smoke", "--results", "results", *extra, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    study = tmp_path / "results" / "smoke" / recipe
    if extra:  # the recipe's experiment and the user's launcher were both found
        assert load_recipe(recipe).config_dir is not None
        for sweep in (study / "multirun").iterdir():
            assert "hydra/launcher: mine" in (sweep / "multirun.yaml").read_text()
    assert list((study / "records").glob("*.json"))
    table = pd.read_csv(study / "claims.csv")
    claims = load_recipe(recipe).claims
    assert list(table.drop_duplicates("claim_id")["claim_id"]) == [c.id for c in claims]
    assert set(table["verdict"]) == set(table["claim_verdict"]) == {SMOKE}
    assert "smoke scale" in (study / "claims.md").read_text()
    if recipe == WANDB_RECIPE:  # once: the claims again from the records, logged to W&B
        again = _reproduce(
            recipe, "--scale", "smoke", "--no-run", "--wandb", "--results", "results", cwd=tmp_path
        )
        assert again.returncode == 0 and pd.read_csv(study / "claims.csv").equals(table)
        _claims_in_wandb(study, table)
    _notebook_shows(recipe, study)


def _user_config(folder: Path) -> list[str]:
    """A user's config folder holding a launcher preset: the overrides that use it."""
    (folder / "hydra" / "launcher").mkdir(parents=True)
    (folder / "hydra" / "launcher" / "mine.yaml").write_text("defaults:\n  - basic\n")
    return [f"hydra.searchpath=[file://{folder}]", "hydra/launcher=mine"]


def test_a_users_search_path_is_added_to_the_recipes_config_folder(tmp_path: Path):
    recipe = load_recipe(USER_CONFIG_RECIPE)
    extra = _user_config(tmp_path / "conf")
    sweeps = sweep_overrides(recipe, "smoke", tmp_path / "results", extra)
    expected = f"hydra.searchpath=[file://{recipe.config_dir},file://{tmp_path / 'conf'}]"
    for overrides in sweeps:
        assert [o for o in overrides if o.startswith("hydra.searchpath")] == [expected]
    check_before_training(recipe, sweeps)  # every grid composes with both folders
    # parsed as Hydra parses a list: a quoted entry keeps its comma, a repeated one goes
    given = ["x=1", "++hydra.searchpath=[file:///u,'file:///a,b',file:///u]"]
    assert with_config_dir(given, Path("/r")) == [
        "hydra.searchpath=[file:///r,file:///u,'file:///a,b']",
        "x=1",
    ]
    alone = sweep_overrides(recipe, "smoke", tmp_path / "results", [])
    assert [o for o in alone[0] if o.startswith("hydra.searchpath")] == [
        f"hydra.searchpath=[file://{recipe.config_dir}]"
    ]


def _notebook_shows(recipe: str, study: Path) -> None:
    """The recipe's notebook runs on the study with a real kernel: no error, the claims table
    and the claims figure shown; kept in git without outputs."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not any(cell.outputs for cell in code)
    env = {**os.environ, "TRANSFERLAB_RECIPE": recipe, "TRANSFERLAB_STUDY": str(study)}
    NotebookClient(notebook, timeout=300).execute(env=env)
    outputs = [o for cell in code for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = "".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert all(c.id in shown for c in load_recipe(recipe).claims)
    assert any("image/png" in o.get("data", {}) for o in outputs)


def _claims_in_wandb(study: Path, table: pd.DataFrame) -> None:
    """The offline analysis run of the study's W&B group holds the claims table, row for row."""
    from helpers.wandb_files import summarize, table_rows

    (run,) = (study / "analysis" / "wandb").glob("offline-run-*")
    assert summarize(next(run.glob("run-*.wandb")))["group"] == study.name
    (claims,) = (run / "files" / "media" / "table").glob("claims_*.table.json")
    rows = table_rows(claims)
    assert [r["claim_id"] for r in rows] == list(table["claim_id"])
    assert [r["verdict"] for r in rows] == list(table["verdict"])


def test_a_sweep_in_this_process_leaves_logging_and_hydra_as_it_found_them(tmp_path: Path):
    """`transferlab-reproduce` runs its sweeps in its own process: a sweep's exit status comes
    back, and Hydra's log handlers (into the last job's log file), its state and the run's
    thread count go with it."""
    import logging

    import torch
    from conftest import FAST
    from hydra.core.global_hydra import GlobalHydra

    from transferlab.cli.reproduce import run_sweep

    root = logging.getLogger()
    handlers, level, threads = list(root.handlers), root.level, torch.get_num_threads()
    results = tmp_path / "results"
    grid = [*FAST, "logger=[csv]", "init=scratch", "train.epochs=1", f"paths.results={results}"]
    grid.append(f"threads={threads + 1}")  # a run's own setting, not the process's after it
    assert run_sweep([*grid, "seed=0", "study=inproc"]) == 0
    assert len(list((results / "inproc" / "records").glob("*.json"))) == 1
    assert root.handlers == handlers and root.level == level
    assert torch.get_num_threads() == threads
    assert not GlobalHydra.instance().is_initialized()
    assert run_sweep([*grid, "seed=0,-1", "study=inproc"]) == 2  # bad input, and again
