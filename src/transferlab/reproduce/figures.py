"""The claims of a reproduction as one figure: each check's estimate with its interval beside
the threshold the paper's claim sets, the paper's side shaded, the verdict in the label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transferlab.reproduce.verdicts import FAIL, PASS

#: Colour of each verdict's marker (anything else: grey).
COLOURS = {PASS: "tab:green", FAIL: "tab:red"}
ROW_HEIGHT = 0.45
MIN_HEIGHT = 2.5
WIDTH = 8.0
SHADE = 0.12


def claims_figure(table: pd.DataFrame) -> Figure:
    """One row per check (claims.csv), one panel per claim so each keeps its own scale."""
    claims = list(dict.fromkeys(table["claim_id"]))
    height = max(MIN_HEIGHT, ROW_HEIGHT * (len(table) + 2 * len(claims)))
    fig = Figure(figsize=(WIDTH, height), layout="constrained")
    sizes = [max(1, int(table["claim_id"].eq(c).sum())) for c in claims]
    axes = fig.subplots(len(claims), 1, squeeze=False, height_ratios=sizes)[:, 0]
    for ax, claim in zip(axes, claims):
        rows = table[table["claim_id"].eq(claim)].reset_index(drop=True)
        _panel(ax, rows)
    return fig


def _panel(ax, rows: pd.DataFrame) -> None:
    first = rows.iloc[0]
    y = np.arange(len(rows))[::-1]
    for yi, (_, row) in zip(y, rows.iterrows()):
        colour = COLOURS.get(row["verdict"], "tab:gray")
        if np.isfinite(row["ci_low"]):
            ax.plot([row["ci_low"], row["ci_high"]], [yi, yi], color=colour, lw=2)
        if np.isfinite(row["estimate"]):
            ax.plot(row["estimate"], yi, "o", color=colour)
    threshold = float(first["threshold"])
    ax.axvline(threshold, color="black", lw=1, ls="--")
    low, high = ax.get_xlim()
    span = (
        (threshold, max(high, threshold + 1e-9))
        if first["expect"] == "above"
        else (min(low, threshold - 1e-9), threshold)
    )
    ax.axvspan(*span, color="tab:green", alpha=SHADE, lw=0)
    ax.set_xlim(low, high)
    labels = [
        f"{row['level'] if isinstance(row['level'], str) else ''} {row['verdict']}".strip()
        for _, row in rows.iterrows()
    ]
    ax.set_yticks(y, labels)
    ax.set_title(f"{first['claim_id']}: {first['claim']}", fontsize="small", loc="left")


def write_claims_figure(table: pd.DataFrame, path: Path) -> Path:
    """claims.png beside claims.csv."""
    claims_figure(table).savefig(path)
    return path
