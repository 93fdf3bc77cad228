"""Publish the reproductions' last full runs: snapshots into experiments/, tables into READMEs.

    transferlab-reproduce <recipe>          # at full scale, for each recipe
    python scripts/reproductions.py [results]

For every recipe whose study folder holds a full-scale claims table, copies `claims.csv`,
`run.json` and the analysis figures into `experiments/<recipe>/`, then regenerates the block
between the claims markers of the recipe's README and the table of recipes in the project's
README (`transferlab.reproduce.digest`). tests/test_readme_findings.py checks both blocks are
the digest of the snapshots.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from transferlab._helpers import replace_marked_block
from transferlab.reproduce.digest import (
    CLAIMS_MARKERS,
    RUN_FILE,
    SNAPSHOT,
    TABLE_MARKERS,
    claims_block,
    recipes_block,
)
from transferlab.reproduce.recipes import load_recipe, recipe_names

ROOT = Path(__file__).resolve().parents[1]
#: The analysis figures a recipe keeps (the counterparts of papers' figures), besides claims.png.
FIGURES = ("gain-heatmap-", "learning-curve-", "drift-", "adaptation", "gain-vs-shift-")
#: Learning curves are kept only where a study has more than one target size.
LEARNING_CURVE = "learning-curve-"


def publish(recipe, study: Path) -> bool:
    """Snapshot one recipe's full run and regenerate its README block; False if none."""
    run_file = study / RUN_FILE
    if not run_file.is_file() or json.loads(run_file.read_text())["scale"] != "full":
        return False
    shutil.copyfile(study / SNAPSHOT, recipe.folder / SNAPSHOT)
    shutil.copyfile(run_file, recipe.folder / RUN_FILE)
    figures = recipe.folder / "figures"
    shutil.rmtree(figures, ignore_errors=True)
    curves = study / "analysis" / "curves.csv"
    sizes = pd.read_csv(curves)["target_size"].nunique() if curves.is_file() else 0
    wanted = FIGURES if sizes > 1 else tuple(p for p in FIGURES if p != LEARNING_CURVE)
    kept = [f for f in (study / "analysis" / "figures").glob("*.png") if f.name.startswith(wanted)]
    for figure in [study / "claims.png", *sorted(kept)]:
        figures.mkdir(exist_ok=True)
        shutil.copyfile(figure, figures / figure.name)
    table = pd.read_csv(recipe.folder / SNAPSHOT)
    run = json.loads(run_file.read_text())
    replace_marked_block(
        recipe.folder / "README.md", *CLAIMS_MARKERS, claims_block(table, run) + "\n"
    )
    return True


def main(argv: list[str]) -> int:
    results = Path(argv[0] if argv else "results")
    recipes = [load_recipe(name) for name in recipe_names()]
    for recipe in recipes:
        done = publish(recipe, results / recipe.name)
        print(f"{recipe.name}: {'published' if done else 'no full run'}")
    replace_marked_block(ROOT / "README.md", *TABLE_MARKERS, recipes_block(recipes) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
