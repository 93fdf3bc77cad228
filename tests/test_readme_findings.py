"""The README's quickstart findings are the digest of the quickstart's own report (a snapshot in
docs/quickstart/, written by scripts/quickstart_findings.py), never hand-copied figures; and the
digest reads what `transferlab-analyze` writes today."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.scripts import load_script
from helpers.simulate import SimulatedStudy, simulate_records, write_records

from transferlab.analysis import analyze
from transferlab.analysis.digest import digest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str = "quickstart_findings"):
    return load_script(name)


def test_readme_block_is_the_digest_of_the_quickstart_snapshot():
    script = _script()
    block = script.readme_block((ROOT / "README.md").read_text())
    assert block == digest(script.SNAPSHOT)
    # The snapshot is a quickstart analysis: its cells are the quickstart's grid.
    cells = pd.read_csv(script.SNAPSHOT / "cells.csv")
    assert set(cells["study"]) == {"quickstart"}
    assert (script.SNAPSHOT / "report.md").read_text().startswith("# Transfer analysis: quickstart")


def test_digest_reads_a_fresh_analysis(tmp_path: Path):
    spec = SimulatedStudy(
        study="digest",
        sources={"close": 0.1, "far": -0.1},
        targets=("digits",),
        target_sizes=(20, 100),
        freeze_depths=(0, 2),
        seeds=8,
    )
    folder = write_records(simulate_records(spec), tmp_path)
    analyze(folder, shift=False)
    cells = pd.read_csv(folder / "analysis" / "cells.csv")
    text = digest(folder / "analysis")
    flags = cells["flag"].value_counts()
    assert text.startswith(f"{len(cells)} cells, 8 paired seeds each")
    assert f"**{flags.get('positive', 0)} positive**" in text
    assert f"**{flags.get('negative', 0)} negative**" in text
    # Every cell's gain is in the table, in its (source, depth) row and size column.
    for row in cells.itertuples():
        table_row = next(
            line
            for line in text.splitlines()
            if line.startswith(f"| {row.model} | {row.source} | {row.freeze_depth} |")
        )
        column = sorted(cells["target_size"].unique()).index(row.target_size)
        assert table_row.split(" | ")[3 + column].startswith(f"{row.gain:+.3f}")
    assert "Shift against gain: nothing to relate" in text


def test_methods_recipe_block_is_the_digest_of_the_methods_snapshot():
    from transferlab.analysis.digest import methods_digest

    script = _script("methods_findings")
    block = script.readme_block(script.README.read_text())
    assert block == methods_digest(script.SNAPSHOT)
    methods = pd.read_csv(script.SNAPSHOT / "methods.csv")
    assert set(methods["study"]) == {"methods"}
    assert (script.SNAPSHOT / "report.md").read_text().startswith("# Transfer analysis: methods")


@pytest.mark.parametrize("recipe", ["candidates", "candidate_files"])
def test_candidate_recipe_blocks_are_the_digest_of_their_snapshots(recipe):
    from transferlab.analysis.digest import ranking_digest

    script = _script("candidates_findings")
    snapshot = script.snapshot_dir(recipe)
    block = script.readme_block(script.README.read_text(), recipe)
    assert block == ranking_digest(snapshot)
    ranking = pd.read_csv(snapshot / "ranking.csv")
    assert set(ranking["study"]) == {recipe} and ranking["candidates"].min() >= 6
    report = (snapshot / "report.md").read_text()
    assert report.startswith(f"# Transfer analysis: {recipe}")


def test_unsupervised_source_block_is_the_digest_of_its_snapshot():
    from transferlab.analysis.digest import objectives_digest

    script = _script("objectives_findings")
    assert script.readme_block(script.README.read_text()) == objectives_digest(script.SNAPSHOT)
    table = pd.read_csv(script.SNAPSHOT / "objectives.csv")
    assert set(table["study"]) == {"unsupervised_source"}
    assert {o.split("(")[0] for o in table["objective"]} == {"denoising", "rotation", "simclr"}
    assert table["n_pairs"].min() >= 10  # the recipe's 10 seeds, each paired
    report = (script.SNAPSHOT / "report.md").read_text()
    assert report.startswith("# Transfer analysis: unsupervised_source")
    assert "## Source objectives" in report


def test_domain_adaptation_block_is_the_digest_of_its_snapshot():
    from transferlab.analysis.adaptation_digest import adaptation_digest

    script = _script("adaptation_findings")
    assert script.readme_block(script.README.read_text()) == adaptation_digest(script.SNAPSHOT)
    table = pd.read_csv(script.SNAPSHOT / "adaptation.csv")
    assert set(table["study"]) == {"domain_adaptation"}
    assert {m.split("(")[0] for m in table["method"]} == {"dann", "coral"}
    assert table["target"].nunique() >= 2  # at least two shifted digit targets
    assert table["n_pairs"].min() >= 10  # the recipe's 10 seeds, each paired
    assert set(table["adapt_selection"]) == {"source"}  # no target label chose anything
    shift = pd.read_csv(script.SNAPSHOT / "adaptation_shift.csv")
    assert len(shift) == 4 * len(table)  # four distances per adapted arm
    report = (script.SNAPSHOT / "report.md").read_text()
    assert report.startswith("# Transfer analysis: domain_adaptation")
    assert "## Domain adaptation" in report and "## Shift on the adapted features" in report


def test_drift_block_is_the_digest_of_its_snapshot():
    from transferlab.analysis.drift_digest import drift_digest

    script = _script("drift_findings")
    assert script.readme_block(script.README.read_text()) == drift_digest(script.SNAPSHOT)
    table = pd.read_csv(script.SNAPSHOT / "drift.csv")
    assert set(table["study"]) == {"drift"}
    assert set(table["strategy"]) == {"static", "source", "sequential", "scratch"}
    assert table["step"].nunique() >= 5  # a chain of at least five steps
    assert table["n_seeds"].min() >= 10  # the recipe's 10 seeds
    forgetting = pd.read_csv(script.SNAPSHOT / "forgetting.csv")
    assert set(forgetting["step"]) == set(range(1, table["step"].nunique()))
    shift = pd.read_csv(script.SNAPSHOT / "drift_shift.csv")
    assert (shift["n"] == table["step"].nunique()).all()  # one point per step
    report = (script.SNAPSHOT / "report.md").read_text()
    assert report.startswith("# Transfer analysis: drift") and "## Drift" in report


def test_exported_candidates_fine_tune_as_the_source_stages_they_came_from():
    """Each candidate_files run starts from a file transferlab-export wrote from a candidates
    source stage: the two studies' fine-tuned accuracies are the same, candidate by candidate."""
    script = _script("candidates_findings")
    files = pd.read_csv(script.snapshot_dir("candidate_files") / "candidates.csv")
    stages = pd.read_csv(script.snapshot_dir("candidates") / "candidates.csv")
    assert len(files) == len(stages) == 32
    for depth in (0, 5):
        mine = files.loc[files["freeze_depth"].eq(depth), "test_acc"].sort_values()
        theirs = stages.loc[stages["freeze_depth"].eq(depth), "test_acc"].sort_values()
        assert np.allclose(mine.to_numpy(), theirs.to_numpy(), rtol=0, atol=1e-12)


def test_digest_words_come_from_the_settings_used(tmp_path: Path):
    spec = SimulatedStudy(
        study="words", sources={"a": 0.1}, target_sizes=(20,), freeze_depths=(0,), seeds=6
    )
    folder = write_records(simulate_records(spec), tmp_path)
    analyze(folder, shift=False, figures=False, correction="holm", alpha=0.1, confidence=0.9)
    text = digest(folder / "analysis")
    assert "q < 0.1 after Holm across" in text and "Benjamini" not in text
    assert "90% interval, seeds resampled jointly across cells" in text and "95%" not in text


def test_digest_names_how_a_correlation_p_was_computed_and_corrects_it(tmp_path: Path):
    from transferlab.analysis.digest import _relations
    from transferlab.analysis.relation import with_q

    rows = [
        {"study": "s", "arm": arm, "space": "pixel", "distance": name, "n": n}
        | {"spearman": rho, "spearman_p": p, "note": ""}
        for arm, name, n, rho, p in (
            ("finetune at freeze depth 2", "mmd", 5, 0.8, 0.0167),
            ("finetune at freeze depth 0", "otdd", 8, 0.5, 0.09),
            ("finetune at freeze depth 0", "a", 8, 0, 1),
        )
    ]
    table = with_q(pd.DataFrame(rows).assign(kendall_p=np.nan), "bh")
    table.to_csv(tmp_path / "shift_gain.csv", index=False)
    (line, _) = _relations(tmp_path, "bh")
    # the smallest q (n = 5: 120 pairings, all enumerated), corrected over the 3 correlations
    assert "mmd in pixel space, finetune at freeze depth 2: Spearman rho +0.80" in line
    assert "exact permutation p = 0.0167, q = 0.0501 after Benjamini-Hochberg across 3" in line
    table.assign(n=8).to_csv(tmp_path / "shift_gain.csv", index=False)
    (line, _) = _relations(tmp_path, "bh")
    assert "permutation p from 9999 random pairings = 0.0167" in line


def test_digest_tables_key_every_cell_dimension():
    """Two targets, the whole pool and two settings of one method: every cell keeps its own
    table cell (keyed on model, source and depth alone, the second target's gain replaced the
    first's)."""
    from transferlab.analysis.digest import gain_table

    base = {"study": "s", "model": "m", "source": "src", "freeze_depth": 0, "flag": ""}
    base |= {"variant": "", "source_variant": ""}
    rows = [
        base | {"target": t, "target_size": size, "method": method, "gain": gain}
        for t, size, method, gain in (
            ("a", 20, "lp_ft(lp_epochs=1)", -0.031),
            ("b", 20, "lp_ft(lp_epochs=1)", 0.042),
            ("a", np.nan, "lp_ft(lp_epochs=1)", 0.053),
            ("a", 20, "lp_ft(lp_epochs=2)", 0.064),
            ("a", 20, np.nan, 0.075),  # plain fine-tuning: "" in cells.csv, NaN read back
        )
    ]
    lines = gain_table(pd.DataFrame(rows))
    assert (
        lines[0]
        == "| model | source | target | method | freeze depth | 20 examples | all examples |"
    )
    body = "\n".join(lines[2:])
    for row in rows:
        assert f"{row['gain']:+.3f}" in body
    assert len(lines) == 2 + 4  # (a, epochs 1), (a, epochs 2), (a, plain), (b, epochs 1)


def test_reproduction_tables_are_the_digest_of_their_snapshots():
    """The README's table of recipes and each recipe's claims block come from the snapshots of
    the last full runs (experiments/<recipe>/claims.csv, run.json); a snapshot's claims are the
    recipe's, in order, and its verdicts agree with its intervals."""
    import json

    from transferlab._helpers import marked_block
    from transferlab.reproduce.digest import (
        CLAIMS_MARKERS,
        RUN_FILE,
        SNAPSHOT,
        TABLE_MARKERS,
        claims_block,
        recipes_block,
    )
    from transferlab.reproduce.recipes import load_recipe, recipe_names

    recipes = [load_recipe(name) for name in recipe_names()]
    readme = marked_block((ROOT / "README.md").read_text(), *TABLE_MARKERS)
    assert readme == recipes_block(recipes) + "\n"
    for recipe in recipes:
        block = marked_block((recipe.folder / "README.md").read_text(), *CLAIMS_MARKERS)
        if not (recipe.folder / SNAPSHOT).is_file():
            assert block == "Not run at full scale yet.\n"
            continue
        table = pd.read_csv(recipe.folder / SNAPSHOT)
        run = json.loads((recipe.folder / RUN_FILE).read_text())
        assert run["scale"] == "full" and block == claims_block(table, run) + "\n"
        assert list(table.drop_duplicates("claim_id")["claim_id"]) == [c.id for c in recipe.claims]
        above = table["expect"].eq("above")
        passed = np.where(
            above, table["ci_low"] > table["threshold"], table["ci_high"] < table["threshold"]
        )
        assert (table["verdict"].eq("PASS") == passed).all()


def test_snapshots_name_their_results_folder_without_a_machines_path(tmp_path):
    # An analysis made outside the checkout (another disk, /tmp) is published relative too.
    study = tmp_path / "elsewhere" / "results" / "quickstart"
    (study / "analysis").mkdir(parents=True)
    (study / "analysis" / "report.md").write_text(f"# Transfer analysis\n\nSource: `{study}`; 3\n")
    _script().snapshot(study / "analysis", tmp_path / "snapshot", ("report.md",))
    text = (tmp_path / "snapshot" / "report.md").read_text()
    assert "Source: `results/quickstart`; 3" in text and str(tmp_path) not in text
    for report in sorted(ROOT.glob("docs/**/report.md")):  # every committed snapshot
        source = next(line for line in report.read_text().splitlines() if line.startswith("Source"))
        assert source.startswith("Source: `results/"), f"{report.relative_to(ROOT)}: {source}"
