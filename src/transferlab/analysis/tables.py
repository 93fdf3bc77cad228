"""Tables for people: GitHub markdown (report.md) and LaTeX (cells.tex), and the formatting of
single values that figures share. Imports no plotting code."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Rows of a table shown in report.md; the CSV always has them all.
MAX_REPORT_ROWS = 60
#: Digits shown for accuracies, gains and p-values.
DIGITS = 3
#: Columns of the cell table in report.md (cells.tex drops reason, ntg and the protocol).
CELL_COLUMNS = [
    "model",
    "source",
    "method",
    "target",
    "target_size",
    "freeze_depth",
    "variant",
    "source_variant",
    "n_pairs",
    "gain",
    "ci_low",
    "ci_high",
    "p",
    "q",
    "flag",
    "ntg",
    "d_ece",
    "d_nll",
    "ft_lr",
    "scratch_lr",
    "ft_val_protocol",
    "reason",
]


def size_label(size: object) -> str:
    """A target size for display; missing means the whole training pool."""
    return (
        "all"
        if size is None or (isinstance(size, float) and math.isnan(size)) or size is pd.NA
        else str(int(size))
    )


def fmt(value: Any) -> str:
    """A cell value for markdown: a few significant digits, missing as empty."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return f"{value:.{DIGITS}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{DIGITS}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    df: pd.DataFrame,
    columns: Sequence[str] | None = None,
    max_rows: int = MAX_REPORT_ROWS,
    csv_name: str | None = None,
) -> str:
    """A GitHub markdown table of the first ``max_rows`` rows (with a pointer to the CSV)."""
    if df is None or df.empty:
        return "_(none)_\n"
    cols = [c for c in (columns or df.columns) if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df[cols].head(max_rows).itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    if len(df) > max_rows:
        where = f" (all in `{csv_name}`)" if csv_name else ""
        lines.append(f"\n_{len(df) - max_rows} more rows{where}._")
    return "\n".join(lines) + "\n"


def latex_cells(cells: pd.DataFrame) -> str:
    """The cell table as a LaTeX tabular (booktabs)."""
    table = cells[[c for c in CELL_COLUMNS if c not in ("reason", "ntg", "ft_val_protocol")]].copy()
    table = table.drop(columns=[c for c in ("variant", "source_variant") if not table[c].any()])
    if table["method"].nunique() <= 1:  # one method (plain fine-tuning): nothing to tell apart
        table = table.drop(columns="method")
    table["target_size"] = table["target_size"].map(size_label)
    table["gain"] = [
        f"{g:+.3f} [{lo:+.3f}, {hi:+.3f}]" if np.isfinite(g) else "--"
        for g, lo, hi in zip(table["gain"], table["ci_low"], table["ci_high"])
    ]
    table = table.drop(columns=["ci_low", "ci_high"]).rename(
        columns={
            "target_size": "size",
            "freeze_depth": "depth",
            "n_pairs": "seeds",
            "gain": "gain [95% CI]",
        }
    )
    return table.to_latex(
        index=False,
        escape=True,
        na_rep="--",
        float_format="%.3g",
        caption="Transfer gain per cell (fine-tuned minus scratch test accuracy).",
        label="tab:transfer-cells",
    )
