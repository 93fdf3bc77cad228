"""The findings section of report.md: which cells came out which way and why, what was
set aside, per-source summaries and domain shift, each number explained next to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.analysis.adaptation import adaptation_findings
from transferlab.analysis.estimators import BASELINES, ESTIMATORS
from transferlab.analysis.keys import SETTING
from transferlab.analysis.relation import FULL_FINETUNING, clearest, describe, family_size
from transferlab.analysis.selection import EDGE_SHARE
from transferlab.analysis.stats import MIN_RANK_PAIRS
from transferlab.analysis.tables import fmt, size_label

#: Cells listed by name in the findings.
MAX_FINDINGS = 15
CORRECTION_NAMES = {
    "bh": "Benjamini-Hochberg (false discovery rate)",
    "holm": "Holm (family-wise error rate)",
}
#: Each paired test's name, and the interval printed with it (analysis.paired).
TEST_NAMES = {
    "t": ("the paired t-test", "t-interval of the mean paired difference"),
    "wilcoxon": (
        "the Wilcoxon signed-rank test",
        "Hodges-Lehmann interval of the pseudo-median paired difference",
    ),
    "signflip": (
        "the exact sign-flip permutation test",
        "interval of the mean paired difference by inverting the sign-flip test",
    ),
}


def _cell_name(row: Any) -> str:
    extra = "; ".join(v for v in (row.variant, row.source_variant) if v)
    method = getattr(row, "method", "") or "finetune"
    how = f"freeze depth {row.freeze_depth}" if method == "finetune" else f"method {method}"
    return (
        f"**{row.source} \u2192 {row.target}** ({row.model}, {size_label(row.target_size)}"
        f" target examples, {how}{'; ' + extra if extra else ''})"
    )


#: How a selected value's validation protocol is named beside it.
PROTOCOL_LABELS = {"budget": "budget validation", "pool": "**oracle validation**"}


def _cell_line(row: Any, settings: dict[str, Any]) -> str:
    protocol = getattr(row, "ft_val_protocol", None)
    return (
        f"- {_cell_name(row)}: gain {row.gain:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}], "
        f"NTG {row.ntg:+.3f}, p = {fmt(row.p)} ({row.test}), q = {fmt(row.q)}, "
        f"{row.n_pairs} seeds; lr fine-tuned {fmt(row.ft_lr)}, scratch {fmt(row.scratch_lr)} "
        f"(chosen on {PROTOCOL_LABELS.get(protocol, protocol)})"
    )


def _listing(rows: pd.DataFrame, settings: dict[str, Any], what: str) -> list[str]:
    lines = [_cell_line(r, settings) for r in rows.head(MAX_FINDINGS).itertuples(index=False)]
    if len(rows) > MAX_FINDINGS:
        lines.append(f"- ... and {len(rows) - MAX_FINDINGS} more {what} cells (see `cells.csv`).")
    return lines


def _overview(cells: pd.DataFrame, s: dict[str, Any]) -> list[str]:
    """How many cells came out which way, and what each number means."""
    out: list[str] = []
    conf = int(round(100 * s["confidence"]))
    counts = cells["flag"].value_counts()
    judged = ("negative", "positive", "inconclusive")
    untested = len(cells) - int(sum(counts.get(f, 0) for f in judged))
    out.append(
        f"{len(cells)} cells (model, source, target, target size, freeze depth) were compared with "
        f"their scratch baseline: **{counts.get('negative', 0)} negative**, "
        f"**{counts.get('positive', 0)} positive**, {counts.get('inconclusive', 0)} inconclusive, "
        f"{untested} not testable. Significance: q < {s['alpha']} after "
        f"{CORRECTION_NAMES[s['correction']]} correction across the study's tested cells."
    )
    test, interval = TEST_NAMES[s["test"]]
    out += [
        "",
        f"_gain = test accuracy fine-tuned minus scratch, mean over paired seeds; "
        f"[low, high] = {conf}% {interval} (per cell, not adjusted for the number of cells); "
        "d_ece, d_nll = change of test ECE and NLL, fine-tuned minus scratch (below 0: "
        "better calibrated; intervals in `cells.csv`); NTG = error with transfer "
        f"minus error without (Wang et al. 2019; > 0 is negative transfer); p from {test}; "
        f"q = {s['correction'].upper() if s['correction'] == 'bh' else 'Holm'}-adjusted p._",
        "",
    ]
    return out


def _flagged(cells: pd.DataFrame, s: dict[str, Any]) -> list[str]:
    """The cells flagged negative (first) and positive, strongest first."""
    out: list[str] = []
    neg = cells[cells["flag"].eq("negative")].sort_values("gain")
    pos = cells[cells["flag"].eq("positive")].sort_values("gain", ascending=False)
    out += ["### Negative transfer", ""]
    out += _listing(neg, s, "negative") or ["No cell transfers negatively with significance."]
    out += ["", "### Positive transfer", ""]
    out += _listing(pos, s, "positive") or ["No cell transfers positively with significance."]
    return out


def _unjudged(cells: pd.DataFrame, s: dict[str, Any]) -> list[str]:
    """Cells that cannot be judged, and why (no baseline, too few seeds, ...)."""
    out: list[str] = []
    untestable = cells[~cells["flag"].isin(["negative", "positive", "inconclusive"])]
    out += ["", "### Cells that cannot be judged", ""]
    if untestable.empty:
        out.append("Every cell had a baseline and enough paired seeds for a test.")
    for flag, group in untestable.groupby("flag", sort=True):
        out.append(
            f"- {flag}: {len(group)} cells, e.g. {_cell_name(group.iloc[0])}: "
            f"{group.iloc[0]['reason']}."
        )
    tested = cells.dropna(subset=["min_q"])
    if len(tested) and (tested["min_q"] >= s["alpha"]).all():
        out.append(
            f"- **No cell can be flagged with these seeds**: even if every cell reached its "
            f"test's smallest attainable p at once, the smallest corrected q would be "
            f"{tested['min_q'].min():.3g} >= {s['alpha']} (the reasons say how many seeds "
            "would do). Run more seeds, or use the t-test (`--test t`)."
        )
    return out


def _grid_edges(cells: pd.DataFrame) -> list[str]:
    """Settings chosen at an edge of their grid: the optimum may lie outside it, so a flag
    that rests on such an arm may be an artefact of the grid."""
    out: list[str] = []
    for arm, column in (("fine-tuned", "ft_edge"), ("scratch", "scratch_edge")):
        if column not in cells:
            continue
        arms = cells if arm == "fine-tuned" else cells.drop_duplicates(SETTING)
        marks = arms[column].str.split("; ").explode()
        marks = marks[marks.astype(bool)]
        for mark, count in marks.value_counts().sort_index().items():
            example = arms.loc[marks[marks.eq(mark)].index[0]]
            out.append(
                f"- **{mark}** for {count} of {len(arms)} {arm} arms (at least "
                f"{EDGE_SHARE:.0%} of their seeds chose it; e.g. {_cell_name(example)}): the "
                "best value may lie outside; widen the grid."
            )
    if not out:
        return out
    risky = cells[cells["edge_risk"]]
    out.append(
        f"- **Flags an edge could overturn: {len(risky)}** (a negative cell whose fine-tuned "
        "arm, or a positive cell whose scratch arm, chose an edge value; `edge_risk` in "
        "`cells.csv`)" + (f", e.g. {_cell_name(risky.iloc[0])}." if len(risky) else ".")
    )
    return ["", "### Choices at an edge of the grid", "", *out]


def _set_aside(results: dict[str, Any]) -> list[str]:
    """Runs and files that enter no number: failed, diverged, conflicting, rejected."""
    out: list[str] = []
    problems = results["problems"]["status"].value_counts()
    failed, diverged = int(problems.get("failed", 0)), int(problems.get("diverged", 0))
    if failed or diverged:
        out.append(
            f"- {failed} failed and {diverged} diverged target runs enter no number "
            "(per cell in `cells.csv`, listed in `problems.csv`)."
        )
    if problems.get("conflict", 0):
        out.append(
            f"- **{int(problems['conflict'])} records conflict**: the same cell, settings and seed "
            "under different run ids (settings outside the run identity, or records from "
            "another version); none of them enters a number (listed in `problems.csv`)."
        )
    if problems.get("duplicate", 0):
        out.append(
            f"- {int(problems['duplicate'])} records repeat the cell, settings and seed of a "
            "later record and were not counted (listed in `problems.csv`)."
        )
    rejected = results.get("unreadable")
    if rejected is not None and len(rejected):
        out.append(
            f"- **{len(rejected)} record files were rejected** and enter no number: the cell "
            "each belongs to has one run fewer (listed in `problems.csv` and `unreadable.csv`):"
        )
        for r in rejected.head(MAX_FINDINGS).itertuples(index=False):
            out.append(f"  - `{Path(r.path).name}`: {r.reason}")
        if len(rejected) > MAX_FINDINGS:
            out.append(f"  - ... and {len(rejected) - MAX_FINDINGS} more.")
    return out


def _per_source(results: dict[str, Any], s: dict[str, Any]) -> list[str]:
    """Per source: IQM gain and probability of improvement with intervals."""
    out: list[str] = []
    conf = int(round(100 * s["confidence"]))
    out += [
        "",
        "### Per source",
        "",
        f"_IQM gain = interquartile mean of the paired gains over all cells and seeds of the "
        f"source; {conf}% intervals resample seeds jointly across the source's cells, which "
        "share each seed's checkpoint, subset and scratch run; "
        "P(improve) = probability that a fine-tuned run beats a scratch run of the same "
        "cell, averaged over cells (Agarwal et al. 2021)._",
        "",
    ]
    if results["summary"].empty:
        out.append("No source has paired fine-tuned and scratch runs.")
    for r in results["summary"].itertuples(index=False):
        out.append(
            f"- **{r.source}** ({r.model}): IQM gain {fmt(r.iqm_gain)} "
            f"[{fmt(r.iqm_low)}, {fmt(r.iqm_high)}], P(improve) {fmt(r.p_improve)} "
            f"[{fmt(r.p_improve_low)}, {fmt(r.p_improve_high)}]; {r.positive} positive "
            f"and {r.negative} negative of {r.cells} cells."
        )
    return out


def _crossings(results: dict[str, Any]) -> list[str]:
    """Where a source's gain changes sign as the target grows."""
    out: list[str] = []
    cross = results["crossings"].dropna(subset=["crossing_size"])
    if len(cross):
        out += ["", "### Where the gain changes sign", ""]
        for r in cross.head(MAX_FINDINGS).itertuples(index=False):
            out.append(
                f"- {r.source} \u2192 {r.target} ({r.model}, depth {r.freeze_depth}): "
                f"{r.note}, near {r.crossing_size:.0f} examples."
            )
    return out


def findings(results: dict[str, Any]) -> list[str]:
    """The findings section: negative cells first, then positive, the untestable, summaries."""
    cells, s = results["cells"], results["settings"]
    out = ["## Findings", "", *adaptation_findings(results)]
    if cells.empty and len(out) > 2:
        return out  # an adaptation study: unlabelled targets have no scratch baseline
    if cells.empty:
        return [*out, "No fine-tuned target run was found, so there is nothing to compare.", ""]
    out += _overview(cells, s) + _flagged(cells, s) + _unjudged(cells, s) + _grid_edges(cells)
    out += _set_aside(results) + _per_source(results, s) + _crossings(results)
    return [*out, *_shift_findings(results), ""]


def _shift_findings(results: dict[str, Any]) -> list[str]:
    if "shift_gain" not in results:
        return ["", "### Domain shift", "", "Not computed (`--no-shift`)."]
    out = ["", "### Domain shift and estimators", ""]
    correction = CORRECTION_NAMES[results["settings"]["correction"]]
    out += _relation_lines(results["shift_gain"], "spearman", "Spearman rho", correction)
    unavailable = results["shift"]
    unavailable = unavailable[unavailable["status"].ne("ok")] if len(unavailable) else unavailable
    if len(unavailable):
        out.append(
            f"- {len(unavailable)} distance rows unavailable, e.g. {unavailable.iloc[0]['reason']}."
        )
    ag = results["estimator_agreement"]
    out += _relation_lines(ag, "kendall", "Kendall tau", correction)
    plain = ag[ag["arm"].eq(FULL_FINETUNING)].dropna(subset=["kendall"]) if len(ag) else ag
    return out + _estimator_lines(plain)


def _relation_lines(table: pd.DataFrame, statistic: str, label: str, correction: str) -> list[str]:
    """The clearest relation of a shift-gain or estimator table over every arm, and full
    fine-tuning's own clearest beside it when another arm shows it more plainly."""
    what = "Shift against gain" if "distance" in table.columns else "Estimator agreement"
    best = clearest(table, statistic)
    if best is None:
        needs = (
            "(source, target) pairs with distances" if "distance" in table.columns else "sources"
        )
        return [
            f"- {what}: not testable (needs {MIN_RANK_PAIRS} or more {needs} in one arm; with "
            "fewer, no rank correlation can be told from chance)."
        ]
    family = family_size(table, best, statistic)
    out = [
        f"- {what}, clearest over {table['arm'].nunique()} arm(s): "
        f"{describe(best, statistic, label, family, correction)}."
    ]
    if best["arm"] != FULL_FINETUNING:
        plain = clearest(table[table["arm"].eq(FULL_FINETUNING)], statistic)
        if plain is not None:
            out.append(
                f"- {what}, full fine-tuning's clearest: "
                f"{describe(plain, statistic, label, family, correction)}."
            )
    return out


def _estimator_lines(agreement: pd.DataFrame) -> list[str]:
    """Each estimator's mean Kendall tau with fine-tuned accuracy, beside the baselines'.

    Descriptive: a mean of point estimates, and the target sizes of one target share its
    scores (estimators score a (source, target) pair), so they are not independent settings;
    no interval or test is claimed."""
    if agreement.empty:
        return []
    tau = agreement.groupby("estimator")["kendall"].mean()
    sizes = agreement.groupby("estimator").size()
    targets = agreement.groupby("estimator")["target"].nunique()
    baselines = {b: tau[b] for b in BASELINES if b in tau}
    shown = ", ".join(f"{b} {t:+.2f}" for b, t in baselines.items())
    out = []
    for name in [e for e in ESTIMATORS if e in tau]:
        verdict = ""
        if baselines:
            beaten = all(tau[name] > t for t in baselines.values())
            verdict = (
                "; a higher mean than both baselines" if beaten else "; **not above the baselines**"
            )
        out.append(
            f"- {name}: Kendall tau with full fine-tuning's accuracy {tau[name]:+.2f} "
            f"(descriptive: mean over {sizes[name]} target sizes of {targets[name]} target(s), "
            f"which share their scores; no interval; baselines: {shown or 'none'}){verdict}."
        )
    return out
