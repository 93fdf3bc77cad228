"""The domain_adaptation study in short, for the recipes' README: from the snapshot of its
analysis (`adaptation.csv`, `adaptation_shift.csv`), each method's paired difference from
source_only per target, and what adaptation did to the measured shift."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.analysis.adaptation import REFERENCE, method_name
from transferlab.analysis.digest import CORRECTIONS, METHOD_MARKS

#: The distances the digest shows the change of (all are in adaptation_shift.csv).
SHOWN_DISTANCES = ("mmd2", "proxy_a")


def _row(values: list[object]) -> str:
    return "| " + " | ".join(str(v) for v in values) + " |"


def _difference(row: pd.Series) -> str:
    if pd.isna(row["d_vs_source_only"]):
        return f"n/a ({row['vs_source_only']})"
    return f"{row['d_vs_source_only']:+.3f}{METHOD_MARKS.get(row['vs_source_only'], '')}"


def _change(rows: pd.DataFrame, distance: str) -> str:
    row = rows[rows["distance"].eq(distance)]
    if row.empty or pd.isna(row.iloc[0]["change"]):
        return "n/a"
    r = row.iloc[0]
    return f"{r['change']:+.3f} ({r['change_low']:+.3f} to {r['change_high']:+.3f})"


def _relation(rows: pd.DataFrame, distance: str) -> str:
    row = rows[rows["distance"].eq(distance)].iloc[0]
    if pd.isna(row["spearman"]):
        return row["note"] or "n/a"
    return f"{row['spearman']:+.2f} (q {row['spearman_q']:.2g})"


def adaptation_digest(folder: str | Path) -> str:
    """Verdict counts, the accuracy table (source_only's mean and each method's difference)
    and the shift table of an adaptation study's analysis folder."""
    table = pd.read_csv(Path(folder) / "adaptation.csv", keep_default_na=False, na_values=[""])
    shift = pd.read_csv(
        Path(folder) / "adaptation_shift.csv", keep_default_na=False, na_values=[""]
    )
    table["name"] = table["method"].map(method_name)
    shift["name"] = shift["method"].map(method_name)
    verdicts = table["vs_source_only"].value_counts()
    names = sorted(table["name"].unique())
    pairs = sorted(table["n_pairs"].astype(int).unique())
    seeds = f"{pairs[0]}" if len(pairs) == 1 else f"{pairs[0]} to {pairs[-1]}"
    correction, alpha = CORRECTIONS[table["correction"].iloc[0]], float(table["alpha"].iloc[0])
    lines = [
        f"{len(table)} comparisons with {REFERENCE} from the same source models, {seeds} paired "
        f"seeds each: **{verdicts.get('better', 0)} better**, **{verdicts.get('worse', 0)} "
        f"worse** (negative transfer of adaptation), {verdicts.get('inconclusive', 0)} "
        f"inconclusive (q < {alpha:g} after {correction} across the study's comparisons).",
        "",
        f"_Target test accuracy of {REFERENCE} (mean over seeds), and each method's paired "
        "difference from it (above 0: adapting helped); (+) and (−) mark a significant "
        "difference (intervals, p and q in `adaptation.csv`). Epochs and learning rates chosen "
        "on the source's validation set, no target label read._",
        "",
        _row(["target", "selection", REFERENCE, *names]),
        "|" + "---|" * (len(names) + 3),
    ]
    for (target, selection), rows in table.groupby(["target", "adapt_selection"], sort=True):
        by_name = {r["name"]: _difference(r) for _, r in rows.iterrows()}
        reference = f"{rows['source_only_acc'].iloc[0]:.3f}"
        lines.append(_row([target, selection, reference, *(by_name.get(n, "") for n in names)]))
    lines += [
        "",
        "_Change of the shift between the source's and the target's test sets measured on the "
        f"selected models' features, adapted minus {REFERENCE} (below 0: adaptation shrank it; "
        "mean over paired seeds, 95% interval); rho = rank correlation across seeds of the "
        "shrinkage of MMD² with the accuracy gain (above 0: seeds whose shift shrank more "
        "gained more), q across the study's arms and distances._",
        "",
        _row(["target", "method", *(f"{d} change" for d in SHOWN_DISTANCES), "rho (mmd2)"]),
        "|" + "---|" * (len(SHOWN_DISTANCES) + 3),
    ]
    for (target, name), rows in shift.groupby(["target", "name"], sort=True):
        changes = [_change(rows, d) for d in SHOWN_DISTANCES]
        lines.append(_row([target, name, *changes, _relation(rows, "mmd2")]))
    return "\n".join(lines) + "\n"
