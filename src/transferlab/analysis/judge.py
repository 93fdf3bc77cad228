"""Judging a study's cells: the q of each cell after correction across its study (the family),
the smallest q it could reach however large its effect (alone, and with every cell of the family
as extreme), NTG, and a flag with a one-line reason a reader can act on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferlab.analysis.paired import seeds_needed
from transferlab.analysis.stats import adjust_pvalues


def judge(cells: pd.DataFrame, correction: str, alpha: float) -> pd.DataFrame:
    """Corrected q per study (the family), NTG, and a flag with its reason per cell.

    alone_q is the q a cell would get if it alone reached its smallest attainable p while the
    rest of its family (`family` cells) stayed null: family size times that p, for BH and Holm
    alike. min_q is its q if every cell of the family reached its own smallest p at once (the
    best case: both corrections only fall as other p-values fall; under BH several extreme
    cells lift each other). At or above alpha, no effect in that cell could be flagged."""
    cells["q"] = np.nan
    cells["min_q"] = np.nan
    cells["alone_q"] = np.nan
    cells["family"] = 0
    for _, family in cells[cells["n_pairs"].ge(2)].groupby("study", sort=False):
        cells.loc[family.index, "q"] = adjust_pvalues(family["p"].to_numpy(), correction)
        cells.loc[family.index, "min_q"] = adjust_pvalues(family["min_p"].to_numpy(), correction)
        cells.loc[family.index, "alone_q"] = np.minimum(1.0, family["min_p"] * len(family))
        cells.loc[family.index, "family"] = len(family)
    # Wang et al.'s negative transfer gap: error with transfer minus error without = -gain
    cells["ntg"] = -cells["gain"]
    cells["ntg_ci_low"], cells["ntg_ci_high"] = -cells["ci_high"], -cells["ci_low"]
    flags = [_flag(row, alpha) for row in cells.to_dict("records")]
    cells["flag"] = [f for f, _ in flags]
    cells["reason"] = [r or n for (_, r), n in zip(flags, cells["note"])]
    cells["correction"] = correction
    cells["alpha"] = alpha
    return cells


def _flag(row: dict, alpha: float) -> tuple[str, str]:
    """The flag of one cell (a row of the cells table) and the reason a reader can act on."""
    if row["ft_completed"] == 0:
        return "no-completed-runs", "no completed fine-tuned run"
    if row["scratch_completed"] == 0:
        return "missing-baseline", "no completed scratch run on this target setting"
    for arm, name in (("ft", "fine-tuned"), ("scratch", "scratch")):
        if row[f"{arm}_seeds"] == 0:
            return "no-selection", (
                f"no seed of the {name} arm could select: {row[f'{arm}_incomplete']} with a "
                f"failed or missing configuration, {row[f'{arm}_all_diverged']} with every "
                "configuration diverged"
            )
    if row["n_pairs"] == 0:
        return "no-paired-seeds", "the seeds selected in the two arms are disjoint"
    if row["n_pairs"] == 1:
        return "single-seed", "one paired seed: no test is possible"
    needs = _seeds_needed(row, alpha)
    if row["test"] != "t" and row["zero_pairs"] > 0:
        return _tied(row, alpha)
    if row["min_p"] > alpha:
        return "too-few-seeds", (
            f"{row['n_pairs']} pairs: a two-sided {row['test']} test "
            f"cannot go below p = {row['min_p']:.4g} > alpha = {alpha}; {needs}"
        )
    if not np.isfinite(row["p"]):
        return "inconclusive", row["note"] or "p-value undefined"
    if row["q"] < alpha:
        return ("negative", "") if row["gain"] < 0 else ("positive", "")
    return "inconclusive", f"q = {row['q']:.3g} >= alpha = {alpha}" + _floor_reason(row, alpha)


def _seeds_needed(row: dict, alpha: float) -> str:
    n = seeds_needed(row["test"], int(row["family"]), alpha)
    if n is None:
        return f"no number of seeds lets one of {int(row['family'])} cells be flagged alone"
    return f"needs {n} seeds to be flagged alone among {int(row['family'])} cells"


def _floor_reason(row: dict, alpha: float) -> str:
    """Why a cell's q could not reach alpha however large its effect, if so: alone at its
    smallest attainable p (`alone_q`), and even with every cell of its family at theirs
    (`min_q`, which BH lowers when several cells are extreme together)."""
    floor = f"its smallest attainable p ({row['test']}, {row['n_pairs']} pairs: {row['min_p']:.3g})"
    if row["min_q"] >= alpha:
        return (
            f"; no effect could be flagged: even with every cell of its family at {floor}, its "
            f"q would be {row['min_q']:.3g}; {_seeds_needed(row, alpha)}"
        )
    if row["alone_q"] >= alpha:
        return (
            f"; alone at {floor} among {int(row['family'])} cells its q would be "
            f"{row['alone_q']:.3g}: it can be flagged only beside other cells as extreme (q "
            f"{row['min_q']:.3g} if every cell reached its smallest p); {_seeds_needed(row, alpha)}"
        )
    return ""


def _tied(row: dict, alpha: float) -> tuple[str, str]:
    """A rank or sign-flip test on a cell whose arms tie on some seeds: only the non-zero
    differences carry a sign, which lowers what the test can reach; more seeds may tie too."""
    if row["min_p"] >= 1.0 and row["gain_sd"] == 0 and row["gain"] == 0:
        return "inconclusive", "every paired difference is zero: the arms tie on every seed"
    if row["min_p"] >= 1.0:
        return "inconclusive", (
            f"{row['n_pairs']} pairs, one with a non-zero difference (a zero difference has no "
            f"sign): a two-sided {row['test']} test cannot go below p = 1; the t-test "
            "(`--test t`) uses every pair"
        )
    if row["min_p"] <= alpha and row["q"] < alpha:
        return ("negative", "") if row["gain"] < 0 else ("positive", "")
    return "inconclusive", (
        f"{row['n_pairs']} pairs, some with a zero difference, which has no sign: a two-sided "
        f"{row['test']} test cannot go below p = {row['min_p']:.4g} here (q = {row['q']:.3g}); "
        "the t-test (`--test t`) uses every pair"
    )
