"""Fine-tuning methods compared: every fine-tuned arm against plain full fine-tuning from the
same source on the same target setting, paired by seed, beside its comparison with scratch.

The reference arm is `finetune` at freeze depth 0. A comparison pairs the two arms' selected
runs (learning rate and epoch chosen per arm on validation) on seed, with the cells' paired
test and multiple-comparison control (one family per study). Where plain fine-tuning shows
negative transfer against scratch (its cell flagged `negative`), a method removes it
(`rescues`) when it is significantly better than plain fine-tuning and there is positive
evidence that its own cell is not harmful: flagged positive, or its interval against scratch
lying above minus `margin` (an equivalence, or non-inferiority, test at the interval's level).
A cell that merely loses its flag removes nothing: a bigger study with less power per cell would
otherwise find more removals, and a -0.05 gain could read "becomes none". The other rule,
`causes`: a method causes negative transfer where its own cell is negative, plain fine-tuning's
is not, and the method is significantly worse than plain fine-tuning. `edge_risk` marks a
verdict a learning rate chosen at an edge of its grid could overturn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferlab.analysis.keys import ARM, SETTING
from transferlab.analysis.paired import DEFAULT_TEST, paired_tests
from transferlab.analysis.stats import CONFIDENCE, adjust_pvalues, group_rows

#: The reference: plain full fine-tuning.
REFERENCE_METHOD = "finetune"
REFERENCE_DEPTH = 0
#: Largest loss of test accuracy against scratch a method's cell may still have and count as
#: no negative transfer (`transferlab-analyze --margin`): an interval above -MARGIN is evidence
#: of no harm beyond it, where a non-significant cell is only absence of evidence.
MARGIN = 0.02
#: An arm's reference shares its target setting, its source and the source stage's settings.
MATCH = [*SETTING, "source", "source_variant"]
COLUMNS = [
    *ARM,
    "n_pairs",
    "d_vs_finetune",
    "ci_low",
    "ci_high",
    "p",
    "q",
    "vs_finetune",
    "gain_vs_scratch",
    "vs_scratch",
    "finetune_vs_scratch",
    "rescues",
    "causes",
    "edge_risk",
    "note",
]


def _is_reference(frame: pd.DataFrame) -> pd.Series:
    return frame["method"].eq(REFERENCE_METHOD) & frame["freeze_depth"].eq(REFERENCE_DEPTH)


def _differences(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, seed): its test accuracy minus the reference arm's on the same seed."""
    runs = pairs[[*ARM, "seed", "ft_test_acc"]]
    ref = runs[_is_reference(runs)][[*MATCH, "seed", "ft_test_acc"]]
    joined = runs[~_is_reference(runs)].merge(
        ref.rename(columns={"ft_test_acc": "ref_test_acc"}), on=[*MATCH, "seed"], how="inner"
    )
    return joined.assign(diff=joined["ft_test_acc"] - joined["ref_test_acc"])


def comparison_flag(
    row: dict, alpha: float, diff: str = "d_vs_finetune", reference: str = "plain fine-tuning"
) -> tuple[str, str]:
    """(verdict, reason) of one paired comparison with a reference arm: better | worse |
    inconclusive, or too-few-pairs / too-few-seeds when no test could reach `alpha`."""
    if row["n_pairs"] < 2:
        return "too-few-pairs", f"{row['n_pairs']} paired seed(s) with {reference}"
    if row["min_p"] > alpha:
        return "too-few-seeds", (
            f"{row['n_pairs']} pairs: the test cannot go below p = {row['min_p']:.3g} > {alpha}"
        )
    if not np.isfinite(row["q"]):
        return "inconclusive", row["note"] or "p-value undefined"
    if row["q"] < alpha:
        return ("better", "") if row[diff] > 0 else ("worse", "")
    return "inconclusive", f"q = {row['q']:.3g} >= alpha = {alpha}"


def _with_scratch(table: pd.DataFrame, cells: pd.DataFrame, margin: float) -> pd.DataFrame:
    """Each arm's own cell (gain, flag and interval against scratch), its reference's flag,
    the removals of negative transfer with positive evidence, and `edge_risk`."""
    own = cells[[*ARM, "gain", "flag", "ci_low", "ft_edge", "scratch_edge"]].rename(
        columns={"gain": "gain_vs_scratch", "flag": "vs_scratch", "ci_low": "_own_low"}
    )
    ref = cells[_is_reference(cells)][[*MATCH, "flag", "ft_edge"]].rename(
        columns={"flag": "finetune_vs_scratch", "ft_edge": "_ref_edge"}
    )
    table = table.merge(own, on=ARM, how="left").merge(ref, on=MATCH, how="left")
    positive = table["vs_scratch"].eq("positive")
    harmless = table["vs_scratch"].eq("inconclusive") & table["_own_low"].gt(-margin)
    removed = (
        table["finetune_vs_scratch"].eq("negative")
        & table["vs_finetune"].eq("better")
        & (positive | harmless)
    )
    table["rescues"] = np.where(
        removed,
        "plain fine-tuning's negative transfer becomes "
        + np.where(
            positive, "positive transfer", f"none (interval against scratch above -{margin:g})"
        ),
        "",
    )
    table["causes"] = causes(table)
    # a better value beyond an edge only improves its arm: a better plain fine-tuning could
    # undo "better", a better method "worse", a better baseline a removal
    at = {c: table[c].fillna("").astype(str).ne("") for c in ("_ref_edge", "ft_edge")}
    table["edge_risk"] = (
        (table["vs_finetune"].eq("better") & at["_ref_edge"])
        | (table["vs_finetune"].eq("worse") & at["ft_edge"])
        | (table["rescues"].ne("") & table["scratch_edge"].fillna("").astype(str).ne(""))
        | (table["causes"].ne("") & at["_ref_edge"])
    )
    return table


def causes(table: pd.DataFrame) -> pd.Series:
    """The `causes` rule on a methods table: the method's cell negative against scratch, plain
    fine-tuning's not, and the method significantly worse than plain fine-tuning."""
    caused = (
        table["vs_scratch"].eq("negative")
        & table["finetune_vs_scratch"].ne("negative")
        & table["vs_finetune"].eq("worse")
    )
    return pd.Series(
        np.where(caused, "negative transfer that plain fine-tuning does not show", ""),
        index=table.index,
    )


def paired_comparison(
    diffs: pd.DataFrame,
    diff: str,
    verdict: str,
    reference: str,
    *,
    correction: str,
    alpha: float,
    test: str,
    confidence: float,
) -> pd.DataFrame:
    """One row per arm of `diffs` (its per-seed differences from a reference arm, `diff`):
    the mean difference in column `diff`, its interval, p, q (corrected per study, as the
    cells) and the verdict in column `verdict` (`comparison_flag`, naming `reference`)."""
    keys, members = group_rows(diffs, ARM, sort=True)
    values = [diffs["diff"].to_numpy()[m] for m in members]
    results = paired_tests(values, test=test, confidence=confidence)
    table = pd.DataFrame(
        [
            {**dict(zip(ARM, k)), "n_pairs": r.n, diff: r.mean, "ci_low": r.ci_low}
            | {"ci_high": r.ci_high, "p": r.p, "min_p": r.min_p, "note": r.note}
            for k, r in zip(keys, results)
        ]
    )
    table["q"] = np.nan
    testable = table["n_pairs"].ge(2) & np.isfinite(table["p"])
    for _, family in table[testable].groupby("study", sort=False):
        table.loc[family.index, "q"] = adjust_pvalues(family["p"].to_numpy(), correction)
    flags = [comparison_flag(row, alpha, diff, reference) for row in table.to_dict("records")]
    table[verdict] = [f for f, _ in flags]
    table["note"] = [reason or note for (_, reason), note in zip(flags, table["note"])]
    return table


def method_comparison(
    pairs: pd.DataFrame,
    cells: pd.DataFrame,
    *,
    correction: str = "bh",
    alpha: float = 0.05,
    test: str = DEFAULT_TEST,
    confidence: float = CONFIDENCE,
    margin: float = MARGIN,
) -> pd.DataFrame:
    """One row per fine-tuned arm other than plain full fine-tuning (see the module docstring);
    empty when a study has no such arm or no reference to compare it with."""
    diffs = _differences(pairs)
    if diffs.empty:
        return pd.DataFrame(columns=COLUMNS)
    table = paired_comparison(
        diffs,
        "d_vs_finetune",
        "vs_finetune",
        "plain fine-tuning",
        correction=correction,
        alpha=alpha,
        test=test,
        confidence=confidence,
    )
    return _with_scratch(table, cells, margin)[COLUMNS]
