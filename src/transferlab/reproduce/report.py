"""The claims table of a reproduction: `claims.csv` (one row per check) and `claims.md` (the
paper's claim, its figure, our statistic with its interval, the threshold and the verdict)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab._helpers import atomic_write
from transferlab.reproduce.recipes import Recipe
from transferlab.reproduce.verdicts import ClaimResult

CSV_NAME = "claims.csv"
MD_NAME = "claims.md"
FIGURE_NAME = "claims.png"
COLUMNS = [
    "recipe",
    "scale",
    "claim_id",
    "claim",
    "paper",
    "level",
    "statistic",
    "n",
    "estimate",
    "ci_low",
    "ci_high",
    "expect",
    "threshold",
    "verdict",
    "note",
    "claim_verdict",
]


def claims_frame(recipe: Recipe, results: Sequence[ClaimResult], scale: str) -> pd.DataFrame:
    """One row per check of every claim."""
    rows = [
        {
            "recipe": recipe.name,
            "scale": scale,
            "claim_id": r.claim.id,
            "claim": r.claim.claim,
            "paper": r.claim.paper,
            "level": c.level,
            "statistic": c.statistic,
            "n": c.n,
            "estimate": c.estimate,
            "ci_low": c.low,
            "ci_high": c.high,
            "expect": r.claim.expect,
            "threshold": r.claim.threshold,
            "verdict": c.verdict,
            "note": c.note,
            "claim_verdict": r.verdict,
        }
        for r in results
        for c in r.checks
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _number(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:+.3f}"


def _ours(row: pd.Series) -> str:
    if not np.isfinite(row["estimate"]):
        return "not computable"
    interval = (
        f" [{_number(row['ci_low'])}, {_number(row['ci_high'])}]"
        if np.isfinite(row["ci_low"])
        else ""
    )
    return f"{_number(row['estimate'])}{interval}, n={row['n']}"


def claims_markdown(recipe: Recipe, table: pd.DataFrame, scale: str, confidence: float) -> str:
    """The claims report: a header on the recipe, then one table row per check."""
    counts = table.drop_duplicates("claim_id")["claim_verdict"].value_counts()
    tally = ", ".join(f"{v} {k}" for k, v in counts.items())
    lines = [
        f"# {recipe.name}: claims ({scale} scale)",
        "",
        f"Paper: {recipe.paper}",
        "",
        f"{recipe.question}",
        "",
        f"{len(counts) and counts.sum()} claims: {tally}.",
        "",
        f"_Ours = the statistic's estimate with its {confidence:.0%} interval and the paired seeds "
        "(or the table's sample size) it rests on. PASS: the whole interval lies on the paper's "
        "side of the threshold; FAIL: on the other side; INCONCLUSIVE: it covers the threshold._",
        "",
        "| claim | the paper | statistic | ours | expected | verdict | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        name = row["claim"] + (f" ({row['level']})" if row["level"] else "")
        expected = f"{row['expect']} {row['threshold']:+g}"
        lines.append(
            f"| {name} | {row['paper']} | `{row['statistic']}` | {_ours(row)} | {expected} "
            f"| {row['verdict']} | {row['note']} |"
        )
    return "\n".join(lines) + "\n"


def write_claims(
    recipe: Recipe,
    results: Sequence[ClaimResult],
    folder: Path,
    scale: str,
    confidence: float,
) -> pd.DataFrame:
    """claims.csv and claims.md in the study folder (atomically); returns the table."""
    table = claims_frame(recipe, results, scale)
    folder.mkdir(parents=True, exist_ok=True)
    csv = table.to_csv(index=False).encode()
    md = claims_markdown(recipe, table, scale, confidence).encode()
    atomic_write(folder / CSV_NAME, lambda handle: handle.write(csv))
    atomic_write(folder / MD_NAME, lambda handle: handle.write(md))
    return table
