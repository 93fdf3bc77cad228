"""The analysis as a W&B run in the study's group (job_type "analysis"): every table as a
wandb.Table and every figure as a wandb.Image, so the dashboard shows them next to the runs.
Offline unless WANDB_MODE says otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.analysis.report import CSV_TABLES

#: Tables logged (those present in the results): the same as the report's CSV files.
TABLES = CSV_TABLES
DEFAULT_PROJECT = "transferlab"
DEFAULT_MODE = "offline"


def _plain_table(df: pd.DataFrame) -> pd.DataFrame:
    """Columns W&B can serialise: missing values as None, sizes as text, no tuples."""
    table = df.copy()
    keep = [c for c in table.columns if not table[c].map(lambda v: isinstance(v, tuple)).any()]
    table = table[keep].astype(object)
    return table.where(table.notna(), None).rename(columns=str)


def _logger_settings(records: pd.DataFrame) -> dict[str, Any]:
    """project and entity of the runs' own W&B logger, read from one record's config."""
    for path in records.get("path", pd.Series(dtype=str)).head(1):
        try:
            cfg = json.loads(Path(path).read_text()).get("config") or {}
            wandb_cfg = (cfg.get("logger") or {}).get("wandb") or {}
            return {"project": wandb_cfg.get("project"), "entity": wandb_cfg.get("entity")}
        except (OSError, ValueError, AttributeError):
            break
    return {}


def log_analysis(
    results: dict[str, Any],
    out: str | Path,
    *,
    project: str | None = None,
    entity: str | None = None,
    extra_tables: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Log the tables and figures as one analysis run; returns the run's local folder.
    `extra_tables` are logged beside the analysis' own (a reproduction's claims table)."""
    import wandb

    studies = results.get("counts", {}).get("studies") or ["analysis"]
    group = studies[0] if len(studies) == 1 else "+".join(studies)
    logger = _logger_settings(results.get("records", pd.DataFrame()))
    out = Path(out)
    run = wandb.init(
        project=project
        or os.environ.get("WANDB_PROJECT")
        or logger.get("project")
        or DEFAULT_PROJECT,
        entity=entity or os.environ.get("WANDB_ENTITY") or logger.get("entity"),
        group=group,
        job_type="analysis",
        name=f"{group}-analysis",
        dir=str(out),
        mode=os.environ.get("WANDB_MODE", DEFAULT_MODE),
        config={**results.get("settings", {}), "path": results.get("path")},
        reinit="create_new",
    )
    try:
        tables = {
            name: wandb.Table(dataframe=_plain_table(results[name]))
            for name in TABLES
            if isinstance(results.get(name), pd.DataFrame)
        }
        for name, table in (extra_tables or {}).items():
            tables[name] = wandb.Table(dataframe=_plain_table(table))
        run.log(tables)
        images = {
            f"figures/{Path(p).stem}": wandb.Image(str(p))
            for p in results.get("files", {}).get("figures", [])
        }
        if images:
            run.log(images)
        cells = results.get("cells")
        if isinstance(cells, pd.DataFrame):
            for flag, count in cells["flag"].value_counts().items():
                run.summary[f"cells/{flag}"] = int(count)
        report = results.get("files", {}).get("report")
        if report is not None:
            run.summary["report"] = str(report)
        run.summary["records"] = int(results.get("counts", {}).get("records", 0))
        folder = Path(run.dir).parent
    finally:
        run.finish()
    return folder
