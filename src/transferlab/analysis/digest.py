"""A short digest of an analysis folder, for a README: the gain of every cell in one table, the
per-source summaries and what could not be judged, read from the files `transferlab-analyze`
wrote (never typed by hand), so the figures a README shows are the figures the study produced.

`scripts/quickstart_findings.py` puts the quickstart's digest into the README; a test checks
that the README's block is the digest of the snapshot in `docs/quickstart/`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.analysis.estimators import BASELINES, ESTIMATORS
from transferlab.analysis.keys import SETTING
from transferlab.analysis.relation import arm_label, clearest, describe, family_size
from transferlab.analysis.selection import EDGE_SHARE
from transferlab.analysis.tables import size_label

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


#: Cell dimensions a digest row shows only when they take more than one value in the study.
OPTIONAL_KEYS = ["study", "target", "variant", "method", "source_variant"]


def row_keys(frame: pd.DataFrame, shown: list[str], across: tuple[str, ...] = ()) -> list[str]:
    """The columns that key a digest row: `shown`, and every other cell dimension that varies
    but is not spread `across` the table's columns (so two cells never share a table cell and
    overwrite each other)."""
    optional = [c for c in OPTIONAL_KEYS if c not in shown and c not in across]
    # a missing value ("" read back as NaN) is a value of its own: plain fine-tuning's method
    varying = [c for c in optional if c in frame.columns and frame[c].nunique(dropna=False) > 1]
    return [*shown[:2], *varying, *shown[2:]]


def _markdown_row(values: list[object]) -> str:
    return "| " + " | ".join(str(v) for v in values) + " |"


def gain_table(cells: pd.DataFrame) -> list[str]:
    """One row per cell dimension but the target size (model, source, freeze depth, and the
    study, target, variants and method wherever they vary), one column per target size ("all"
    for the whole pool)."""
    keys = row_keys(cells, ["model", "source", "freeze_depth"])
    cells = cells.assign(_size=cells["target_size"].map(size_label))
    numeric = sorted(int(v) for v in cells["target_size"].dropna().unique())
    sizes = [str(v) for v in numeric] + (["all"] if cells["_size"].eq("all").any() else [])
    lines = [
        _markdown_row([*(k.replace("_", " ") for k in keys), *(f"{s} examples" for s in sizes)]),
        "|" + "---|" * (len(keys) + len(sizes)),
    ]
    for key, rows in cells.groupby(keys, sort=True, dropna=False):
        by_size = {row["_size"]: _gain(row) for _, row in rows.iterrows()}
        lines.append(_markdown_row([*key, *(by_size.get(s, "") for s in sizes)]))
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
        f"({confidence:.0%} interval, seeds resampled jointly across cells, {row.iqm_low:+.3f} to "
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
    """Shift against gain and estimator agreement: the clearest relation over every arm (the
    analysis corrected each p across the whole table), or why there is none."""
    lines = []
    for name, what, statistic, label in (
        ("shift_gain.csv", "Shift against gain", "spearman", "Spearman rho"),
        ("estimator_agreement.csv", "Estimator agreement", "kendall", "Kendall tau"),
    ):
        path = folder / name
        table = pd.read_csv(path) if path.exists() and path.stat().st_size > 1 else None
        if table is None or table.empty:
            lines.append(f"- {what}: nothing to relate.")
            continue
        best = clearest(table, statistic)
        if best is None:
            notes = table["note"].dropna()
            why = notes.iloc[0] if len(notes) else "no rank correlation (constant scores or gains)"
            lines.append(f"- {what}: {why}.")
            continue
        family = family_size(table, best, statistic)
        lines.append(
            f"- {what}, clearest of {family} rank correlations over "
            f"{table['arm'].nunique()} arm(s): "
            f"{describe(best, statistic, label, family, CORRECTIONS[correction])}."
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


def _method_names(methods: pd.DataFrame) -> pd.Series:
    """Each arm's column name: the method's name (with its freeze depth when not 0), or its
    name with its settings where two settings of one method ran."""
    full = [arm_label(m, d) for m, d in zip(methods["method"], methods["freeze_depth"])]
    short = [
        arm_label(str(m).split("(", 1)[0], d)
        for m, d in zip(methods["method"], methods["freeze_depth"])
    ]
    pairs = pd.DataFrame({"short": short, "full": full}, index=methods.index)
    ambiguous = pairs.groupby("short")["full"].transform("nunique").gt(1)
    return pairs["full"].where(ambiguous, pairs["short"])


def methods_digest(folder: str | Path) -> str:
    """The method comparison of an analysis folder (`methods.csv`) in short: verdict counts,
    one row per (source, target size, and every other cell dimension that varies) with each
    method's difference from plain fine-tuning, and where a method removes plain fine-tuning's
    negative transfer."""
    methods = pd.read_csv(Path(folder) / "methods.csv", keep_default_na=False, na_values=[""])
    methods["name"] = _method_names(methods)
    verdicts = methods["vs_finetune"].value_counts()
    names = sorted(methods["name"].unique())
    keys = row_keys(methods, ["model", "source", "target_size"], across=("method",))
    # the comparison used the cells' correction and alpha (one analysis, one setting)
    correction, alpha, _ = _judgement(pd.read_csv(Path(folder) / "cells.csv"))
    lines = [
        f"{len(methods)} comparisons with plain full fine-tuning, "
        f"{int(methods['n_pairs'].min())} to {int(methods['n_pairs'].max())} paired seeds each: "
        f"**{verdicts.get('better', 0)} better**, **{verdicts.get('worse', 0)} worse**, "
        f"{verdicts.get('inconclusive', 0)} inconclusive (q < {alpha:g} after "
        f"{CORRECTIONS[correction]} across the study's comparisons).",
        "",
        "_Test accuracy minus plain full fine-tuning's from the same source, mean over paired "
        "seeds; (+) and (−) mark a significant difference (intervals, p and q in "
        "`methods.csv`); the last column is plain fine-tuning against scratch._",
        "",
        _markdown_row([*(k.replace("_", " ") for k in keys), *names, "finetune vs scratch"]),
        "|" + "---|" * (len(keys) + len(names) + 1),
    ]
    for key, rows in methods.groupby(keys, sort=True, dropna=False):
        by_name = {row["name"]: _against_finetune(row) for _, row in rows.iterrows()}
        reference = rows["finetune_vs_scratch"].iloc[0]
        shown = [size_label(v) if k == "target_size" else v for k, v in zip(keys, key)]
        lines.append(_markdown_row([*shown, *(by_name.get(n, "") for n in names), reference]))
    rescued = methods[methods["rescues"].fillna("").ne("")]
    lines.append("")
    lines += [
        f"- {r.name} on {r.source} at {size_label(r.target_size)} examples: {r.rescues} "
        f"(gain against scratch {r.gain_vs_scratch:+.3f})."
        for r in rescued.itertuples()
    ] or ["- No method removes a negative transfer of plain fine-tuning here."]
    caused = methods[_causes(methods).ne("")]
    lines += [
        f"- {r.name} on {r.source} at {size_label(r.target_size)} examples: "
        f"{_causes(methods)[r.Index]} (gain against scratch {r.gain_vs_scratch:+.3f})."
        for r in caused.itertuples()
    ]
    return "\n".join(lines) + "\n"


def _causes(methods: pd.DataFrame) -> pd.Series:
    """The table's `causes` column (its rule applied to a table written before it existed)."""
    if "causes" in methods.columns:
        return methods["causes"].fillna("")
    from transferlab.analysis.methods import causes

    return causes(methods)


def _interval(row: pd.Series) -> str:
    if pd.isna(row["tau"]):
        return f"n/a ({row['note']})"
    if pd.isna(row["ci_low"]):
        return f"{row['tau']:+.2f} ({row['note']})"
    return f"{row['tau']:+.2f} ({row['ci_low']:+.2f} to {row['ci_high']:+.2f})"


def ranking_digest(folder: str | Path) -> str:
    """The candidate ranking of an analysis folder (`ranking.csv`, `candidates.csv`) in short:
    per comparison (freeze depth and every other dimension that varies), each score's weighted
    tau with its interval, whether it ranks positively (interval above 0), and whether each
    estimator ranks better than the better of the two baselines (the paired interval of the
    difference of their taus above 0), worse, or cannot be told apart."""
    ranking = pd.read_csv(Path(folder) / "ranking.csv", keep_default_na=False, na_values=[""])
    candidates = pd.read_csv(Path(folder) / "candidates.csv")
    if ranking.empty or candidates.empty:
        return "No candidates were ranked: no study setting had fine-tuned candidates scored.\n"
    keys = row_keys(ranking, ["model", "freeze_depth"], across=("score",))
    scores = [*ESTIMATORS, *BASELINES]
    lines = [
        f"{candidates.groupby(keys, dropna=False).ngroups} comparisons of "
        f"{int(ranking['candidates'].max())} candidate initialisations, "
        f"{int(ranking['seeds'].max())} seeds each, scored on each seed's "
        f"{int(candidates['examples'].max())} labelled examples.",
        "",
        "_Weighted Kendall tau between each score's ranking of the candidates and their "
        "fine-tuned test accuracy (means over seeds; 95% interval resampling seeds); +1 = the "
        "same order, 0 = unrelated._",
        "",
        _markdown_row([*(k.replace("_", " ") for k in keys), *scores]),
        "|" + "---|" * (len(keys) + len(scores)),
    ]
    verdicts = []
    for key, rows in ranking.groupby(keys, sort=True, dropna=False):
        by_score = rows.set_index("score")
        lines.append(_markdown_row([*key, *(_interval(by_score.loc[s]) for s in scores)]))
        where = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in zip(keys, key))
        for s in ESTIMATORS:
            r = by_score.loc[s]
            positive = "ranks positively" if r["ci_low"] > 0 else "is not shown to rank positively"
            if pd.isna(r["vs_ci_low"]):
                beats = "has no interval against"
            elif r["vs_ci_low"] > 0:
                beats = "ranks better than"
            elif r["vs_ci_high"] < 0:
                beats = "ranks worse than"
            else:
                beats = "cannot be told apart from"
            verdicts.append(
                f"- {where}: {s} {positive} (tau {_interval(r)}) and {beats} {r['baseline']}, "
                f"the better baseline ({r['vs_baseline']:+.2f}, {r['vs_ci_low']:+.2f} to "
                f"{r['vs_ci_high']:+.2f})."
            )
    return "\n".join([*lines, "", *verdicts]) + "\n"


def _against_supervised(row: pd.Series) -> str:
    if pd.isna(row["d_vs_supervised"]):
        return f"n/a ({row['vs_supervised']})"
    return f"{row['d_vs_supervised']:+.3f}{METHOD_MARKS.get(row['vs_supervised'], '')}"


def objectives_digest(folder: str | Path) -> str:
    """The cells against scratch of an analysis folder and its source-objective comparison
    (`objectives.csv`) in short: verdict counts, one row per (source data, freeze depth, and
    every other cell dimension that varies) with each objective's difference from the
    supervised source of the same data."""
    cells = pd.read_csv(Path(folder) / "cells.csv")
    table = pd.read_csv(Path(folder) / "objectives.csv", keep_default_na=False, na_values=[""])
    table["name"] = table["objective"].str.split("(", n=1).str[0]
    verdicts = table["vs_supervised"].value_counts()
    names = sorted(table["name"].unique())
    shown = ["model", "source_data", "freeze_depth", "target_size"]
    keys = row_keys(table, shown, across=("source", "objective", "name"))
    correction, alpha, _ = _judgement(cells)
    pairs = sorted(table["n_pairs"].astype(int).unique())
    seeds = f"{pairs[0]}" if len(pairs) == 1 else f"{pairs[0]} to {pairs[-1]}"
    lines = [
        _overview(cells),
        "",
        "_Gain = test accuracy fine-tuned minus scratch, mean over paired seeds; (+) and (−) "
        "mark cells flagged positive or negative (intervals, p and q in `cells.csv`)._",
        "",
        *gain_table(cells),
        "",
        f"{len(table)} comparisons with the supervised source of the same data, {seeds} paired "
        f"seeds each: **{verdicts.get('better', 0)} better**, **{verdicts.get('worse', 0)} "
        f"worse**, {verdicts.get('inconclusive', 0)} inconclusive (q < {alpha:g} after "
        f"{CORRECTIONS[correction]} across the study's comparisons).",
        "",
        "_Test accuracy from the source pre-trained without labels minus that from the "
        "supervised source of the same images, mean over paired seeds; (+) and (−) mark a "
        "significant difference (intervals, p and q in `objectives.csv`); the last column is "
        "the supervised source against scratch._",
        "",
        _markdown_row([*(k.replace("_", " ") for k in keys), *names, "supervised vs scratch"]),
        "|" + "---|" * (len(keys) + len(names) + 1),
    ]
    for key, rows in table.groupby(keys, sort=True, dropna=False):
        by_name = {row["name"]: _against_supervised(row) for _, row in rows.iterrows()}
        reference = rows["supervised_vs_scratch"].iloc[0]
        cells_shown = [size_label(v) if k == "target_size" else v for k, v in zip(keys, key)]
        lines.append(_markdown_row([*cells_shown, *(by_name.get(n, "") for n in names), reference]))
    return "\n".join(lines) + "\n"
