"""What the READMEs say about the reproductions, generated from the snapshot of each recipe's
last full run (`experiments/<recipe>/claims.csv` and `run.json`), never typed: the claims table
in the recipe's README and the table of recipes in the project's README."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferlab.reproduce.recipes import Recipe
from transferlab.reproduce.verdicts import FAIL, INCONCLUSIVE, PASS

CLAIMS_MARKERS = ("<!-- claims:start -->", "<!-- claims:end -->")
TABLE_MARKERS = ("<!-- reproductions:start -->", "<!-- reproductions:end -->")
RUN_FILE = "run.json"
SNAPSHOT = "claims.csv"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)


def study_runtime(study: Path) -> dict[str, Any]:
    """The study's training time: the wall times of its sweep launches added up (each launch
    trains only what the ones before left undone), the launches and the runs they trained."""
    summaries = [json.loads(p.read_text()) for p in study.glob("multirun/*/sweep_summary.json")]
    trained = [s for s in summaries if s.get("completed", 0) + s.get("diverged", 0) > 0]
    return {
        "training_s": round(sum(s["wall_time_s"] for s in trained), 1),
        "launches": len(trained),
        "runs": int(sum(s.get("completed", 0) + s.get("diverged", 0) for s in trained)),
    }


def duration(seconds: float) -> str:
    """`1h02m`, `16m43s` or `48s`."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _ours(row: Mapping[str, Any]) -> str:
    if not np.isfinite(row["estimate"]):
        return "not computable"
    if not np.isfinite(row["ci_low"]):
        return f"{row['estimate']:+.3f}, n={row['n']}"
    return f"{row['estimate']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], n={row['n']}"


def claims_block(table: pd.DataFrame, run: Mapping[str, Any]) -> str:
    """The recipe README's block: when and how long it ran, then one row per check."""
    tally = verdict_tally(table)
    lines = [
        f"Last full run on a {run['cpus']}-core CPU machine, {run['date']}: {run['runs']} "
        f"runs trained in {duration(run['training_s'])} ({run['launches']} sweep launch"
        f"{'es' if run['launches'] != 1 else ''}), analysed in {duration(run['analysis_s'])}. "
        f"Verdicts: {tally}.",
        "",
        f"| claim | the paper | ours ({run['confidence']:.0%} interval, n) | expected | verdict "
        "| note |",
        "|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        name = row["claim"] + (f" ({row['level']})" if isinstance(row["level"], str) else "")
        note = row["note"] if isinstance(row["note"], str) else ""
        lines.append(
            f"| {name} | {row['paper']} | {_ours(row)} | {row['expect']} "
            f"{row['threshold']:+g} | {row['verdict']} | {note} |"
        )
    return "\n".join(lines)


def verdict_tally(table: pd.DataFrame) -> str:
    """`2 PASS, 1 INCONCLUSIVE` over the claims (not their checks)."""
    counts = table.drop_duplicates("claim_id")["claim_verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)


def recipes_block(recipes: list[Recipe]) -> str:
    """The project README's table of recipes, from their snapshots."""
    lines = [
        "| recipe | paper | claims | verdicts (last full run) | training time | run on |",
        "|---|---|---|---|---|---|",
    ]
    for recipe in recipes:
        snapshot = recipe.folder / SNAPSHOT
        if snapshot.is_file():
            run = json.loads((recipe.folder / RUN_FILE).read_text())
            verdicts = verdict_tally(pd.read_csv(snapshot))
            time, date = duration(run["training_s"]), run["date"]
        else:
            verdicts, time, date = "not run at full scale yet", "", ""
        lines.append(
            f"| [`{recipe.name}`](experiments/{recipe.name}/README.md) | {recipe.cite} | "
            f"{len(recipe.claims)} | {verdicts} | {time} | {date} |"
        )
    return "\n".join(lines)
