"""Source objectives compared: an arm whose source was pre-trained without labels
(`denoising`, `rotation`, `simclr`) against the arm from the supervised source of the same
data, with the same method and freeze depth on the same target setting, paired by seed.

Does unsupervised pre-training transfer better or worse than supervised pre-training of the
same images? Each comparison pairs the two arms' selected runs (learning rate and epoch chosen
per arm on validation) on seed, with the cells' paired test and multiple-comparison control
(one family per study, as the cells'); beside it, each arm's own cell against scratch.
"""

from __future__ import annotations

import re

import pandas as pd

from transferlab.analysis.keys import ARM, SETTING
from transferlab.analysis.methods import paired_comparison
from transferlab.analysis.paired import DEFAULT_TEST
from transferlab.analysis.stats import CONFIDENCE

#: What the analysis names the default objective (records leave it out of a source's name).
SUPERVISED = "supervised"
#: An objective without labels at the end of a source's name (`analysis.records`):
#: `<data>, <objective>(<settings>)`.
_NAMED = re.compile(r"^(?P<data>.+), (?P<objective>(?:denoising|rotation|simclr)(?:\(.*\))?)$")
#: A comparison's reference shares the target setting, the source's data, method and depth.
MATCH = [*SETTING, "source_data", "method", "freeze_depth", "source_variant"]
COLUMNS = [
    *ARM,
    "source_data",
    "objective",
    "n_pairs",
    "d_vs_supervised",
    "ci_low",
    "ci_high",
    "p",
    "q",
    "vs_supervised",
    "gain_vs_scratch",
    "vs_scratch",
    "supervised_vs_scratch",
    "note",
]


def split_objective(source: str) -> tuple[str, str]:
    """(source data, objective) of an arm's source name; `supervised` when none is named."""
    match = _NAMED.match(str(source))
    return (match["data"], match["objective"]) if match else (str(source), SUPERVISED)


def _with_objective(frame: pd.DataFrame) -> pd.DataFrame:
    parts = [split_objective(s) for s in frame["source"]]
    return frame.assign(source_data=[d for d, _ in parts], objective=[o for _, o in parts])


def _differences(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, seed): its test accuracy minus the supervised arm's on the same seed."""
    runs = _with_objective(pairs[[*ARM, "seed", "ft_test_acc"]])
    supervised = runs["objective"].eq(SUPERVISED)
    ref = runs[supervised][[*MATCH, "seed", "ft_test_acc"]]
    joined = runs[~supervised].merge(
        ref.rename(columns={"ft_test_acc": "ref_test_acc"}), on=[*MATCH, "seed"], how="inner"
    )
    return joined.assign(diff=joined["ft_test_acc"] - joined["ref_test_acc"])


def objective_comparison(
    pairs: pd.DataFrame,
    cells: pd.DataFrame,
    *,
    correction: str = "bh",
    alpha: float = 0.05,
    test: str = DEFAULT_TEST,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """One row per arm with a source pre-trained without labels that has a supervised
    counterpart (see the module docstring); empty when a study has none."""
    diffs = _differences(pairs[~pairs["source"].eq("scratch")]) if len(pairs) else pairs
    if diffs.empty:
        return pd.DataFrame(columns=COLUMNS)
    table = paired_comparison(
        diffs,
        "d_vs_supervised",
        "vs_supervised",
        "the supervised source",
        correction=correction,
        alpha=alpha,
        test=test,
        confidence=confidence,
    )
    table = _with_objective(table)
    return _with_cells(table, cells)[COLUMNS]


def _with_cells(table: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Each arm's own cell against scratch, and its supervised counterpart's flag."""
    own = cells[[*ARM, "gain", "flag"]].rename(
        columns={"gain": "gain_vs_scratch", "flag": "vs_scratch"}
    )
    named = _with_objective(cells[[*ARM, "flag"]])
    ref = named[named["objective"].eq(SUPERVISED)][[*MATCH, "flag"]].rename(
        columns={"flag": "supervised_vs_scratch"}
    )
    return table.merge(own, on=ARM, how="left").merge(ref, on=MATCH, how="left")
