"""`transferlab-reproduce RECIPE [--scale smoke|full] [overrides ...]`: run a paper's miniature
(a `transferlab-run -m` sweep: resumable, cached, any launcher; run in this process, as the
console entry point runs it, so the libraries are loaded once), analyse it, check its claims
and write `claims.md`, `claims.csv`, `claims.png` and `run.json` (date, training and analysis
time) into the study folder. `--list` shows the recipes.

Exit status: 0 when no claim fails, 1 when one does (or the sweep failed), 2 on bad input
(an unknown recipe, a malformed claim, a claim naming a cell the grid cannot have), found
before any training.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from transferlab._helpers import exit_without_collection
from transferlab.errors import ConfigError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
PROG = "transferlab-reproduce"
#: Under the results root, smoke-scale studies get a folder of their own.
SMOKE_FOLDER = "smoke"
#: At smoke scale nothing is judged: the analysis skips its slow parts.
SMOKE_ANALYSIS = {"shift": False, "figures": False, "n_resamples": 200}


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Run a paper's miniature study, analyse it and check the paper's claims.",
    )
    p.add_argument("recipe", nargs="?", help="a recipe (see --list)")
    p.add_argument("--list", action="store_true", help="list the recipes and their last verdicts")
    p.add_argument(
        "--scale",
        choices=("smoke", "full"),
        default="full",
        help="full: the study whose claims are checked; smoke: a few runs that exercise it, "
        "every verdict 'smoke: not checked' (default full)",
    )
    p.add_argument("--results", default="results", help="results root (default results)")
    p.add_argument(
        "--no-run",
        action="store_true",
        help="check the claims on the records already there, without sweeping",
    )
    p.add_argument(
        "--wandb", action="store_true", help="log the analysis and the claims table to W&B"
    )
    return p


def _study_root(results: str, scale: str) -> Path:
    root = Path(results).expanduser()
    return root / SMOKE_FOLDER if scale == "smoke" else root


def sweep_overrides(recipe, scale: str, root: Path, extra: Sequence[str]) -> list[list[str]]:
    """The `transferlab-run -m` overrides of each of a recipe's sweeps at a scale (the grid's,
    then its further `launches`), with the user's own last; the recipe's config folder and the
    user's own `hydra.searchpath` entries are one search path (`with_config_dir`)."""
    from transferlab.reproduce.grid import with_config_dir

    base = [
        f"experiment={recipe.experiment}",
        f"study={recipe.name}",
        f"paths.results={root.resolve()}",
        *recipe.scales[scale],
    ]
    launches = [[], *recipe.launches]
    return [with_config_dir([*base, *launch, *extra], recipe.config_dir) for launch in launches]


def list_recipes(results: str) -> int:
    """Print each recipe, its paper and the verdicts of its last full run."""
    import pandas as pd

    from transferlab.reproduce.recipes import load_recipe, recipe_names
    from transferlab.reproduce.report import CSV_NAME

    for name in recipe_names():
        recipe = load_recipe(name)
        csv = Path(results) / name / CSV_NAME
        last = "not run"
        if csv.is_file():
            verdicts = pd.read_csv(csv).drop_duplicates("claim_id")["claim_verdict"]
            last = ", ".join(f"{n} {v}" for v, n in verdicts.value_counts().items())
        print(f"{name:<22} {len(recipe.claims)} claims  last: {last}  {recipe.paper}")
    return 0


def evaluated_on(recipe) -> list[str]:
    """The descriptions of the datasets the recipe's runs are tested on after training
    (`evaluate: ["--on", DATA, ...]`), as the analysis names them."""
    from transferlab.cli.evaluate import dataset_spec
    from transferlab.data import describe

    args = recipe.evaluate
    named = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--on"]
    named += [a.removeprefix("--on=") for a in args if a.startswith("--on=")]
    return [describe(dataset_spec(text, recipe.config_dir)) for text in named]


def check_before_training(recipe, sweeps: list[list[str]]) -> None:
    """Every claim's cells exist in the grids (a one-line ConfigError otherwise)."""
    import pandas as pd
    from hydra.errors import HydraException

    from transferlab._helpers import first_line
    from transferlab.reproduce.grid import check_cells, preview_cells

    on = evaluated_on(recipe)
    previews = []
    for overrides in sweeps:
        try:
            previews.append(preview_cells(overrides, recipe.config_dir, on))
        except (HydraException, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"the grid cannot be composed: {first_line(exc)}") from None
    cells = pd.concat(previews, ignore_index=True)
    check_cells(recipe.claims, cells)


def run_sweep(overrides: Sequence[str]) -> int:
    """`transferlab-run -m OVERRIDES` in this process, through the console entry point itself
    (its checks, exit statuses and messages); its exit status."""
    import torch
    from hydra.core.global_hydra import GlobalHydra

    from transferlab.cli import run

    argv, root, threads = sys.argv, logging.getLogger(), torch.get_num_threads()
    handlers, level = list(root.handlers), root.level
    sys.argv = [run.PROG, "-m", *overrides]
    try:
        run.main()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()  # the next sweep initialises Hydra again
        for handler in set(root.handlers) - set(handlers):  # Hydra's, into the last job's log
            root.removeHandler(handler)
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        torch.set_num_threads(threads)  # a run's `threads` setting is the run's only
    return 0


def analyse_and_check(recipe, study: Path, scale: str, wandb: bool) -> int:
    """Analyse the study, check the claims, write and print the claims table."""
    from transferlab._helpers import atomic_write_json
    from transferlab.analysis.pipeline import AnalysisSettings, analyze
    from transferlab.reproduce.digest import RUN_FILE, study_runtime
    from transferlab.reproduce.figures import write_claims_figure
    from transferlab.reproduce.report import FIGURE_NAME, MD_NAME, write_claims
    from transferlab.reproduce.verdicts import FAIL, PASS, SMOKE, check_claims

    smoke = SMOKE_ANALYSIS if scale == "smoke" else {}
    settings = AnalysisSettings(**{**recipe.analysis, **smoke})
    started = time.perf_counter()
    results = analyze(study, settings=settings, wandb=False)
    checked = check_claims(recipe.claims, results, scale == "smoke", settings.confidence)
    table = write_claims(recipe, checked, study, scale, settings.confidence)
    write_claims_figure(table, study / FIGURE_NAME)
    run = {
        "recipe": recipe.name,
        "scale": scale,
        "date": datetime.date.today().isoformat(),
        "cpus": len(os.sched_getaffinity(0)),
        "confidence": settings.confidence,
        "analysis_s": round(time.perf_counter() - started, 1),
        **study_runtime(study),
    }
    atomic_write_json(study / RUN_FILE, run)
    if wandb:
        from transferlab.analysis.wandb_log import log_analysis

        log_analysis(results, study / "analysis", extra_tables={"claims": table})
    for result in checked:
        print(f"{result.verdict:<20} {result.claim.id}: {result.claim.claim}")
        for check in result.checks:
            if check.verdict not in (PASS, SMOKE):
                where = f"{check.level}: " if check.level else ""
                interval = f"{check.estimate:+.3f} [{check.low:+.3f}, {check.high:+.3f}]"
                print(f"{'':<20}   {where}{check.verdict}, {interval}; {check.note}".rstrip("; "))
    print(f"claims: {study / MD_NAME}")
    return EXIT_FAILED if any(r.verdict == FAIL for r in checked) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Check, sweep, analyse, judge; one-line errors; 128 + n when stopped by signal n."""
    exit_without_collection()
    args, extra = parser().parse_known_args(argv)
    from transferlab.analysis.records import RecordsPathError
    from transferlab.cli.signals import Interrupted, stop_on_signals
    from transferlab.reproduce.recipes import load_recipe

    stop_on_signals()  # as its sweeps do: Ctrl-C or SIGTERM anywhere ends it the same way

    try:
        if args.list:
            return list_recipes(args.results)
        if not args.recipe:
            raise ConfigError("name a recipe (transferlab-reproduce --list shows them)")
        recipe = load_recipe(args.recipe)
        root = _study_root(args.results, args.scale)
        sweeps = sweep_overrides(recipe, args.scale, root, extra)
        if not args.no_run:
            check_before_training(recipe, sweeps)
            for overrides in sweeps:
                if status := run_sweep(overrides):
                    return status
            if recipe.evaluate:
                from transferlab.cli import evaluate

                if status := evaluate.main([str(root / recipe.name), *recipe.evaluate]):
                    return status
        study = root / recipe.name
        if not (study / "records").is_dir():
            raise ConfigError(f"no records in {study}: run it first (without --no-run)")
        return analyse_and_check(recipe, study, args.scale, args.wandb)
    except (ConfigError, RecordsPathError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as exc:
        print(f"{PROG}: stopped by {exc}; the same command resumes the study", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main())
