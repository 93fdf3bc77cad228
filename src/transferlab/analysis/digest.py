"""A short digest of an analysis folder, for a README: the gain of every cell in one table, the
per-source summaries and what could not be judged, read from the files `transferlab-analyze`
wrote (never typed by hand), so the figures a README shows are the figures the study produced.

`scripts/quickstart_findings.py` puts the quickstart's digest into the README; a test checks
that the README's block is the digest of the snapshot in `docs/quickstart/`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.analysis.keys import SETTING
from transferlab.analysis.selection import EDGE_SHARE
from transferlab.analysis.stats import PERMUTATIONS, adjust_pvalues

#: How the digest names each correction.
CORRECTIONS = {"bh": "Benjamini-Hochberg", "holm": "Holm"}

#: Mark of a cell's flag in the gain table (inconclusive cells get none).
FLAG_MARKS = {"positive": " (+)", "negative": " (−)"}
#: Files of an analysis folder the digest reads.
DIGEST_FILES = (
    "cells.csv",
    "summary.csv",
    "shift_gain.csv",
    "estimator_agreement.csv",
)


def _gain(row: pd.Series) -> str:
    if pd.isna(row["gain"]):
        return f"n/a ({row['flag']})"
    return f"{row['gain']:+.3f}{FLAG_MARKS.get(row['flag'], '')}"


def gain_table(cells: pd.DataFrame) -> list[str]:
    """One row per (model, source, [method,] freeze depth), one column per target size (the
    method column only where more than one method ran)."""
    sizes = sorted(cells["target_size"].unique())
    methods = "method" in cells.columns and cells["method"].nunique() > 1
    keys = ["model", "source", *(["method"] if methods else []), "freeze_depth"]
    names = [k.replace("_", " ") for k in keys]
    lines = [
        "| " + " | ".join(names) + " | " + " | ".join(f"{s} examples" for s in sizes) + " |",
        "|" + "---|" * (len(keys) + len(sizes)),
    ]
    for key, rows in cells.groupby(keys, sort=True):
        by_size = {row["target_size"]: _gain(row) for _, row in rows.iterrows()}
        lines.append(
            "| "
            + " | ".join(str(k) for k in key)
            + " | "
            + " | ".join(by_size.get(s, "") for s in sizes)
            + " |"
        )
    return lines


def _overview(cells: pd.DataFrame) -> str:
    flags = cells["flag"].value_counts()
    pairs = sorted(cells["n_pairs"].dropna().astype(int).unique())
    seeds = f"{pairs[0]}" if len(pairs) == 1 else f"{pairs[0]} to {pairs[-1]}"
    tests = ", ".join(sorted(cells["test"].dropna().unique())) or "none"
    protocols = ", ".join(sorted(cells["ft_val_protocol"].dropna().unique())) or "none"
    judged = int(flags.reindex(["positive", "negative", "inconclusive"]).fillna(0).sum())
    correction, alpha, _ = _judgement(cells)
    return (
        f"{len(cells)} cells, {seeds} paired seeds each: **{flags.get('positive', 0)} positive**, "
        f"**{flags.get('negative', 0)} negative**, {flags.get('inconclusive', 0)} inconclusive, "
        f"{len(cells) - judged} not judged (paired {tests} test per cell, q < {alpha:g} after "
        f"{CORRECTIONS[correction]} across the study's cells; validation protocol: "
        f"{protocols})."
    )


def _judgement(cells: pd.DataFrame) -> tuple[str, float, float]:
    """The correction, alpha and interval level the analysis used (columns of cells.csv)."""
    first = cells.iloc[0]
    return first["correction"], float(first["alpha"]), float(first["confidence"])


def _per_source(summary: pd.DataFrame, confidence: float) -> list[str]:
    return [
        f"- **{row.source}** ({row.model}): interquartile-mean gain {row.iqm_gain:+.3f} "
        f"({confidence:.0%} stratified-bootstrap interval {row.iqm_low:+.3f} to "
        f"{row.iqm_high:+.3f}), "
        f"P(a fine-tuned run beats a scratch run of its cell) {row.p_improve:.2f}; "
        f"{row.positive} positive and {row.negative} negative of {row.cells} cells."
        for row in summary.itertuples()
    ]


def _edges(cells: pd.DataFrame) -> str:
    """How many arms most of whose seeds chose an edge of the grid, and the flags at risk."""
    scratch = cells.drop_duplicates([c for c in SETTING if c in cells])
    ft_at = cells["ft_edge"].fillna("").astype(str).str.len() > 0
    sc_at = scratch["scratch_edge"].fillna("").astype(str).str.len() > 0
    risky = int(cells["edge_risk"].sum()) if "edge_risk" in cells else 0
    return (
        f"Learning rates at an edge of the grid (chosen there by at least {EDGE_SHARE:.0%} of "
        f"an arm's seeds): {int(ft_at.sum())} of {len(cells)} fine-tuned arms and "
        f"{int(sc_at.sum())} of {len(scratch)} scratch arms (`cells.csv`, columns `ft_edge`, "
        f"`scratch_edge`); flags such a choice could overturn: {risky} (`cells.csv`, column "
        "`edge_risk`)."
    )


def _relations(folder: Path, correction: str) -> list[str]:
    """Shift against gain and estimator agreement: their figures, or why there are none."""
    lines = []
    for name, what in (
        ("shift_gain.csv", "Shift against gain"),
        ("estimator_agreement.csv", "Estimator agreement"),
    ):
        path = folder / name
        table = pd.read_csv(path) if path.exists() and path.stat().st_size > 1 else None
        if table is None or table.empty:
            lines.append(f"- {what}: nothing to relate.")
            continue
        tested = table[table["kendall"].notna()]
        if tested.empty:
            lines.append(f"- {what}: {table['note'].dropna().iloc[0]}.")
            continue
        q = adjust_pvalues(tested["kendall_p"].to_numpy(), correction)
        best = tested.iloc[int(np.nanargmin(q))]
        kind = (
            "exact permutation p"
            if math.factorial(int(best["n"])) <= PERMUTATIONS
            else f"permutation p from {PERMUTATIONS} random pairings"
        )
        lines.append(
            f"- {what}: {len(tested)} rank correlations; the strongest, Kendall tau "
            f"{best['kendall']:+.2f} ({kind} = {best['kendall_p']:.3f}, q = {np.nanmin(q):.3f} "
            f"after {CORRECTIONS[correction]} across these {len(tested)}; {int(best['n'])} "
            "pairs)."
        )
    return lines


def digest(folder: str | Path) -> str:
    """The digest (Markdown) of the analysis folder `folder`."""
    folder = Path(folder)
    cells = pd.read_csv(folder / "cells.csv")
    summary = pd.read_csv(folder / "summary.csv")
    parts = [
        _overview(cells),
        "",
        "_Gain = test accuracy fine-tuned minus scratch, mean over paired seeds; (+) and (−) "
        "mark cells flagged positive or negative (intervals, p and q in `cells.csv`)._",
        "",
        *gain_table(cells),
        "",
        *_per_source(summary, _judgement(cells)[2]),
        "",
        _edges(cells),
        "",
        *_relations(folder, _judgement(cells)[0]),
    ]
    return "\n".join(parts) + "\n"


#: Mark of a method's verdict against plain fine-tuning.
METHOD_MARKS = {"better": " (+)", "worse": " (−)"}


def _against_finetune(row: pd.Series) -> str:
    if pd.isna(row["d_vs_finetune"]):
        return f"n/a ({row['vs_finetune']})"
    return f"{row['d_vs_finetune']:+.3f}{METHOD_MARKS.get(row['vs_finetune'], '')}"


def methods_digest(folder: str | Path) -> str:
    """The method comparison of an analysis folder (`methods.csv`) in short: verdict counts,
    one row per (source, target size) with each method's difference from plain fine-tuning,
    and where a method removes plain fine-tuning's negative transfer."""
    methods = pd.read_csv(Path(folder) / "methods.csv", keep_default_na=False, na_values=[""])
    methods["name"] = methods["method"].str.split("(", n=1).str[0]
    verdicts = methods["vs_finetune"].value_counts()
    names = sorted(methods["name"].unique())
    lines = [
        f"{len(methods)} comparisons with plain full fine-tuning, "
        f"{int(methods['n_pairs'].min())} to {int(methods['n_pairs'].max())} paired seeds each: "
        f"**{verdicts.get('better', 0)} better**, **{verdicts.get('worse', 0)} worse**, "
        f"{verdicts.get('inconclusive', 0)} inconclusive (BH q < 0.05 per study).",
        "",
        "_Test accuracy minus plain full fine-tuning's from the same source, mean over paired "
        "seeds; (+) and (−) mark a significant difference (intervals, p and q in "
        "`methods.csv`); the last column is plain fine-tuning against scratch._",
        "",
        "| source | examples | " + " | ".join(names) + " | finetune vs scratch |",
        "|" + "---|" * (len(names) + 3),
    ]
    for (source, size), rows in methods.groupby(["source", "target_size"], sort=True):
        by_name = {row["name"]: _against_finetune(row) for _, row in rows.iterrows()}
        reference = rows["finetune_vs_scratch"].iloc[0]
        lines.append(
            f"| {source} | {size} | "
            + " | ".join(by_name.get(n, "") for n in names)
            + f" | {reference} |"
        )
    rescued = methods[methods["rescues"].fillna("").ne("")]
    lines.append("")
    lines += [
        f"- {r.name} on {r.source} at {r.target_size} examples: {r.rescues} "
        f"(gain against scratch {r.gain_vs_scratch:+.3f})."
        for r in rescued.itertuples()
    ] or ["- No method removes a negative transfer of plain fine-tuning here."]
    caused = methods[  # significantly worse than plain fine-tuning, which is not negative
        methods["vs_scratch"].eq("negative")
        & methods["finetune_vs_scratch"].ne("negative")
        & methods["vs_finetune"].eq("worse")
    ]
    lines += [
        f"- {r.name} on {r.source} at {r.target_size} examples: negative transfer that plain "
        f"fine-tuning does not show (gain against scratch {r.gain_vs_scratch:+.3f})."
        for r in caused.itertuples()
    ]
    return "\n".join(lines) + "\n"
