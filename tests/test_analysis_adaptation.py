"""Adaptation methods compared with source_only, and the shift on their adapted features:
verdicts on planted data (the recipe's real study is checked in tests/test_readme_findings.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transferlab.analysis.adaptation import adaptation_comparison, adaptation_shift
from transferlab.analysis.flatten import ADAPTED_SHIFT_KEYS
from transferlab.analysis.keys import ARM

SEEDS = 10
BASE = {"study": "s", "model": "m", "target_size": 0, "variant": "", "source": "digits"}


def _arm(target: str, method: str, selection: str, accs, shift) -> list[dict]:
    label = f"{method}(selection={selection})"
    arm = {**BASE, "target": target, "method": label, "freeze_depth": 0, "source_variant": ""}
    return [
        {**arm, "adapt_selection": selection, "seed": i, "test_acc": a}
        | {f"adapted_{k}": s for k in ADAPTED_SHIFT_KEYS}
        for i, (a, s) in enumerate(zip(accs, shift))
    ]


def _planted() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = 0.5 + 0.05 * rng.standard_normal(SEEDS)
    shift = 1.0 + 0.1 * rng.standard_normal(SEEDS)
    shrink = np.linspace(0.1, 0.5, SEEDS)  # seeds whose shift shrinks more gain more
    rows = [
        *_arm("rot", "source_only", "source", base, shift),
        *_arm("rot", "dann", "source", base + 0.1 * shrink + 0.02, shift - shrink),
        *_arm("rot", "coral", "source", base - 0.2 + 0.01 * rng.standard_normal(SEEDS), shift),
        *_arm("rot", "source_only", "oracle", base + 0.3, shift),
        *_arm("rot", "dann", "oracle", base + 0.3 + 0.001 * rng.standard_normal(SEEDS), shift),
        *_arm("noise", "dann", "source", base, shift),  # no source_only here: not compared
    ]
    return pd.DataFrame(rows)


def test_each_method_is_paired_with_source_only_of_its_selection_rule():
    table = adaptation_comparison(_planted())
    assert list(table[ARM].columns) == ARM
    key = table.set_index(["method", "adapt_selection"])
    assert set(key.index) == {
        ("dann(selection=source)", "source"),
        ("coral(selection=source)", "source"),
        ("dann(selection=oracle)", "oracle"),
    }
    dann = key.loc[("dann(selection=source)", "source")]
    assert dann["vs_source_only"] == "better" and not dann["negative_adaptation"]
    assert dann["d_vs_source_only"] == pytest.approx(
        0.1 * np.linspace(0.1, 0.5, SEEDS).mean() + 0.02
    )
    coral = key.loc[("coral(selection=source)", "source")]
    assert coral["vs_source_only"] == "worse" and coral["negative_adaptation"]
    assert coral["d_vs_source_only"] == pytest.approx(-0.2, abs=0.01)  # negative adaptation
    # the oracle arm is paired with the oracle source_only (+0.3), not the source-selected one
    oracle = key.loc[("dann(selection=oracle)", "oracle")]
    assert abs(oracle["d_vs_source_only"]) < 0.01 and oracle["vs_source_only"] == "inconclusive"
    assert (table["n_pairs"] == SEEDS).all()


def test_the_shrinkage_of_the_shift_and_its_relation_to_the_gain():
    table = adaptation_shift(_planted(), n_resamples=200)
    dann = table[table["method"].eq("dann(selection=source)")].set_index("distance")
    assert set(dann.index) == set(ADAPTED_SHIFT_KEYS)
    assert dann.loc["mmd2", "change"] == pytest.approx(-np.linspace(0.1, 0.5, SEEDS).mean())
    assert dann.loc["mmd2", "change_high"] < 0
    assert dann.loc["mmd2", "spearman"] == pytest.approx(1.0)  # planted: monotone
    assert dann.loc["mmd2", "spearman_p"] < 0.01 and dann.loc["mmd2", "spearman_q"] < 0.05
    coral = table[table["method"].eq("coral(selection=source)")].set_index("distance")
    assert coral.loc["mmd2", "change"] == pytest.approx(0.0)
    assert np.isnan(coral.loc["mmd2", "spearman"])  # no spread in the shrinkage: no number


def test_too_few_seeds_give_no_correlation_and_a_study_without_adaptation_no_table():
    few = _planted().query("seed < 3")
    table = adaptation_shift(few, n_resamples=200)
    assert table["spearman"].isna().all() and table["note"].str.startswith("not testable").all()
    plain = _planted().drop(columns=["adapt_selection"])
    assert adaptation_comparison(plain).empty and adaptation_shift(plain).empty
    assert adaptation_comparison(_planted().assign(adapt_selection=None)).empty
