"""Domain adaptation methods compared: every adaptation arm (`dann`, `coral`) against
`source_only` from the same source model on the same target, with the same selection rule,
paired by seed; and the shift measured on each arm's adapted features beside source_only's.

An adaptation study has no scratch baseline (its target has no labels to train one on), so
no cell: each arm's runs are chosen on validation as every arm's are (learning rate and epoch,
on the validation set its `selection` names: the source's, or the target's for an oracle arm),
and a comparison pairs the two arms' selected runs on seed, with the cells' paired test and
multiple-comparison control (one family per study). An arm significantly worse than
source_only is "negative transfer of adaptation". An oracle arm is paired only with the oracle
source_only arm.

The shift table asks whether adaptation shrank the measured shift (each distance between the
source's and the target's test sets on the selected model's features, `adaptation.shift` of
the records: adapted minus source_only, per seed, with its paired interval) and whether the
seeds whose shift shrank more gained more (Spearman's rho of shrinkage against the paired
accuracy gain across seeds, permutation p, q across the study's arms and distances).
"""

from __future__ import annotations

import pandas as pd

from transferlab.analysis.flatten import ADAPTED_SHIFT_KEYS
from transferlab.analysis.keys import ARM, SETTING
from transferlab.analysis.methods import paired_comparison
from transferlab.analysis.paired import DEFAULT_TEST, paired_test
from transferlab.analysis.stats import (
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    MIN_RANK_PAIRS,
    q_per_study,
    rank_correlations,
)

#: The arm every adaptation method is paired with.
REFERENCE = "source_only"
#: An arm's reference shares its target setting, source, source stage and selection rule.
MATCH = [*SETTING, "source", "source_variant", "adapt_selection"]
COLUMNS = [
    *ARM,
    "adapt_selection",
    "n_pairs",
    "source_only_acc",
    "method_acc",
    "d_vs_source_only",
    "ci_low",
    "ci_high",
    "p",
    "q",
    "vs_source_only",
    "negative_adaptation",
    "correction",
    "alpha",
    "note",
]
SHIFT_COLUMNS = [
    *ARM,
    "adapt_selection",
    "distance",
    "n",
    "source_only_shift",
    "adapted_shift",
    "change",
    "change_low",
    "change_high",
    "change_p",
    "spearman",
    "spearman_low",
    "spearman_high",
    "spearman_p",
    "spearman_q",
    "note",
]


def method_name(label: object) -> str:
    """The method of an arm's method label (`dann(weight=1.0, ...)`: dann)."""
    return str(label).split("(", 1)[0]


def _pairs(selected: pd.DataFrame) -> pd.DataFrame:
    """Per (adaptation arm, seed): its selected run beside source_only's (`ref_` columns)."""
    runs = selected[selected["adapt_selection"].notna()]
    if runs.empty:
        return runs
    measures = [f"adapted_{k}" for k in ADAPTED_SHIFT_KEYS]
    columns = [*ARM, "adapt_selection", "seed", "test_acc", *measures]
    runs = runs[columns]
    is_ref = runs["method"].map(method_name).eq(REFERENCE)
    ref = runs[is_ref][[*MATCH, "seed", "test_acc", *measures]].add_prefix("ref_")
    ref = ref.rename(columns={f"ref_{k}": k for k in [*MATCH, "seed"]})
    joined = runs[~is_ref].merge(ref, on=[*MATCH, "seed"], how="inner")
    return joined.assign(diff=joined["test_acc"] - joined["ref_test_acc"])


def adaptation_comparison(
    selected: pd.DataFrame,
    *,
    correction: str = "bh",
    alpha: float = 0.05,
    test: str = DEFAULT_TEST,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """One row per adaptation arm with a source_only counterpart (see the module docstring);
    empty when a study has none."""
    pairs = _pairs(selected) if "adapt_selection" in selected else pd.DataFrame()
    if pairs.empty:
        return pd.DataFrame(columns=COLUMNS)
    table = paired_comparison(
        pairs,
        "d_vs_source_only",
        "vs_source_only",
        REFERENCE,
        correction=correction,
        alpha=alpha,
        test=test,
        confidence=confidence,
    )
    means = pairs.groupby(ARM, dropna=False)[["ref_test_acc", "test_acc", "adapt_selection"]]
    means = means.agg({"ref_test_acc": "mean", "test_acc": "mean", "adapt_selection": "first"})
    means = means.rename(columns={"ref_test_acc": "source_only_acc", "test_acc": "method_acc"})
    table = table.merge(means.reset_index(), on=ARM, how="left")
    table["negative_adaptation"] = table["vs_source_only"].eq("worse")
    table["correction"], table["alpha"] = correction, alpha
    return table[COLUMNS]


def _shift_row(group: pd.DataFrame, name: str, test: str, **kwargs) -> dict:
    """One arm's change of distance `name` against source_only, and its relation to the gain."""
    change = (group[f"adapted_{name}"] - group[f"ref_adapted_{name}"]).to_numpy(float)
    finite = change[pd.notna(change)]
    result = paired_test(finite, test=test, confidence=kwargs["confidence"])
    relation = rank_correlations(-change, group["diff"].to_numpy(float), **kwargs)
    enough = relation["n"] >= MIN_RANK_PAIRS
    return {
        "distance": name,
        "n": int(finite.size),
        "source_only_shift": float(group[f"ref_adapted_{name}"].mean()),
        "adapted_shift": float(group[f"adapted_{name}"].mean()),
        "change": result.mean,
        "change_low": result.ci_low,
        "change_high": result.ci_high,
        "change_p": result.p,
        **{k: relation[k] for k in ("spearman", "spearman_low", "spearman_high", "spearman_p")},
        "note": "" if enough else f"not testable: fewer than {MIN_RANK_PAIRS} paired seeds",
    }


def adaptation_shift(
    selected: pd.DataFrame,
    *,
    correction: str = "bh",
    test: str = DEFAULT_TEST,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per adaptation arm and distance (see the module docstring); empty when a study
    has no adaptation arm with a source_only counterpart."""
    pairs = _pairs(selected) if "adapt_selection" in selected else pd.DataFrame()
    if pairs.empty:
        return pd.DataFrame(columns=SHIFT_COLUMNS)
    kwargs = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    rows = [
        {**dict(zip([*ARM, "adapt_selection"], key)), **_shift_row(group, name, test, **kwargs)}
        for key, group in pairs.groupby([*ARM, "adapt_selection"], dropna=False, sort=True)
        for name in ADAPTED_SHIFT_KEYS
    ]
    table = pd.DataFrame(rows)
    return q_per_study(table, "spearman_p", "spearman_q", correction).reindex(columns=SHIFT_COLUMNS)


def _shift_words(shift: pd.DataFrame, arm: pd.Series, distance: str) -> str:
    """What adaptation did to one distance of an arm, and whether that went with its gain."""
    rows = shift[shift["distance"].eq(distance)]
    rows = rows.merge(arm.to_frame().T[[*ARM, "adapt_selection"]], on=[*ARM, "adapt_selection"])
    if rows.empty:
        return ""
    r = rows.iloc[0]
    interval = f"[{r['change_low']:+.3f}, {r['change_high']:+.3f}]"
    text = f"{distance} on its features {r['change']:+.3f} {interval}"
    if pd.isna(r["spearman"]):
        return f"{text}; shrinkage against gain {r['note'] or 'not computable'}"
    rho = f"rho {r['spearman']:+.2f} (q {r['spearman_q']:.3g})"
    return f"{text}; shrinkage against gain across seeds {rho}"


def adaptation_findings(results: dict, distance: str = "mmd2") -> list[str]:
    """The findings lines of an adaptation study: verdict counts, then one line per arm."""
    table, shift = results.get("adaptation"), results.get("adaptation_shift")
    if table is None or table.empty:
        return []
    s = results["settings"]
    counts = table["vs_source_only"].value_counts()
    out = [
        "### Domain adaptation",
        "",
        f"{len(table)} adaptation arms were compared with source_only from the same source "
        f"models (paired by seed): **{counts.get('better', 0)} better**, "
        f"**{counts.get('worse', 0)} worse** (negative transfer of adaptation), "
        f"{counts.get('inconclusive', 0)} inconclusive, "
        f"{len(table) - sum(counts.get(k, 0) for k in ('better', 'worse', 'inconclusive'))} not "
        f"testable; q < {s['alpha']} after {s['correction']} correction across the study's "
        "comparisons. Change of the measured shift: adapted minus source_only, below 0 = "
        "adaptation shrank it; rho above 0 = seeds whose shift shrank more gained more.",
        "",
    ]
    for _, r in table.sort_values(["adapt_selection", "target", "method"]).iterrows():
        oracle = (
            " **(oracle selection: target labels)**" if r["adapt_selection"] == "oracle" else ""
        )
        gain = (
            f"{r['d_vs_source_only']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], "
            f"q {r['q']:.3g}"
            if pd.notna(r["q"])
            else f"{r['d_vs_source_only']:+.3f} ({r['note']})"
        )
        words = _shift_words(shift, r, distance) if shift is not None else ""
        out.append(
            f"- **{method_name(r['method'])}** {r['source']} \u2192 {r['target']}{oracle}: "
            f"{r['method_acc']:.3f} against {r['source_only_acc']:.3f}, {gain}: "
            f"**{r['vs_source_only']}**" + (f"; {words}" if words else "")
        )
    return [*out, ""]
