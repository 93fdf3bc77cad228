"""Load run records (docs/records.md) into one tidy pandas table, fast and without crashing.

Unreadable, torn or foreign files are skipped and listed in ``df.attrs["unreadable"]``; the
caller reports them. Only the fields the analysis needs are kept (one row per record).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Below this many files the records are parsed in-process (a process pool costs more).
PARALLEL_MIN_FILES = 4000
#: Files handed to one worker task.
CHUNK_FILES = 2000
#: Statuses a record may have; anything else makes the file unreadable.
STATUSES = ("completed", "diverged", "failed")
#: Metrics copied from ``metrics.val`` and ``metrics.test``.
METRIC_KEYS = ("acc", "nll", "ece")
#: Record fields that must be present for a file to count as a record.
REQUIRED_FIELDS = ("run_id", "study", "stage", "status")

#: Columns of the tidy table, in order.
COLUMNS = (
    "run_id",
    "study",
    "stage",
    "status",
    "error",
    "init",
    "model",
    "num_stages",
    "freeze_depth",
    "source",
    "target",
    "target_size",
    "train_examples",
    "num_classes",
    "lr",
    "weight_decay",
    "epochs",
    "batch_size",
    "seed",
    "split_seed",
    *(f"{split}_{key}" for split in ("val", "test") for key in METRIC_KEYS),
    "best_epoch",
    "val_curve",
    "source_run_id",
    "source_checkpoint",
    "wall_time_s",
    "finished_at",
    "path",
)


class RecordsPathError(FileNotFoundError):
    """The path is neither a study folder (with records/) nor a results root holding studies."""


def record_files(path: str | Path) -> tuple[list[Path], Path]:
    """Record files under a study folder, its records/ folder, or a results root.

    Returns the files (sorted) and the results root their relative paths refer to.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise RecordsPathError(f"no such folder: {path}")
    path = path.resolve()
    if path.name == "records" and not (path / "records").is_dir():
        return sorted(path.glob("*.json")), path.parent.parent
    if (path / "records").is_dir():
        return sorted((path / "records").glob("*.json")), path.parent
    files = sorted(path.glob("*/records/*.json"))
    if not files and not any(path.glob("*/records")):
        raise RecordsPathError(f"{path} holds no records/ folder (neither a study nor a results root)")
    return files, path


def _metric(metrics: Any, split: str, key: str) -> float:
    try:
        value = metrics[split][key]
    except (KeyError, TypeError):
        return np.nan
    return np.nan if value is None else float(value)


def _name(part: Any) -> Any:
    if isinstance(part, Mapping):
        return part.get("description") or part.get("name")
    return None


def flatten_record(record: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """One tidy row from a record: nested fields flattened, missing ones None/NaN."""
    missing = [k for k in REQUIRED_FIELDS if k not in record]
    if missing:
        raise ValueError(f"not a record (lacks {missing})")
    if record["status"] not in STATUSES:
        raise ValueError(f"unknown status {record['status']!r}")
    metrics = record.get("metrics")
    curve = record.get("val_curve") or ()
    row = {
        "run_id": record["run_id"],
        "study": record["study"],
        "stage": record["stage"],
        "status": record["status"],
        "error": record.get("error"),
        "init": record.get("init"),
        "model": record.get("model"),
        "num_stages": record.get("num_stages"),
        "freeze_depth": record.get("freeze_depth"),
        "source": _name(record.get("source")),
        "target": _name(record.get("target")),
        "target_size": record.get("target_size"),
        "train_examples": record.get("train_examples"),
        "num_classes": record.get("num_classes"),
        "lr": record.get("lr"),
        "weight_decay": record.get("weight_decay"),
        "epochs": record.get("epochs"),
        "batch_size": record.get("batch_size"),
        "seed": record.get("seed"),
        "split_seed": record.get("split_seed"),
        "best_epoch": record.get("best_epoch"),
        "val_curve": tuple(
            np.nan if (p.get("acc") if isinstance(p, Mapping) else None) is None else p["acc"]
            for p in curve
        ),
        "source_run_id": record.get("source_run_id"),
        "source_checkpoint": record.get("source_checkpoint"),
        "wall_time_s": record.get("wall_time_s"),
        "finished_at": record.get("finished_at"),
        "path": path,
    }
    for split in ("val", "test"):
        for key in METRIC_KEYS:
            row[f"{split}_{key}"] = _metric(metrics, split, key)
    return row


def _parse_files(paths: Sequence[str]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Parse a chunk of files; returns rows and (path, reason) for the unreadable ones."""
    rows: list[dict[str, Any]] = []
    bad: list[tuple[str, str]] = []
    for name in paths:
        try:
            with open(name, "rb") as handle:
                record = json.loads(handle.read())
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            rows.append(flatten_record(record, name))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            bad.append((name, f"{type(exc).__name__}: {exc}"[:300]))
    return rows, bad


def _parse_all(paths: list[str], workers: int | None) -> tuple[list[dict], list[tuple[str, str]]]:
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(paths) < PARALLEL_MIN_FILES:
        return _parse_files(paths)
    chunks = [paths[i : i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    rows: list[dict] = []
    bad: list[tuple[str, str]] = []
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for chunk_rows, chunk_bad in pool.map(_parse_files, chunks):
                rows.extend(chunk_rows)
                bad.extend(chunk_bad)
    except (OSError, RuntimeError):  # no process pool here (sandbox, frozen app): parse inline
        return _parse_files(paths)
    return rows, bad


def records_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The tidy table from flattened rows (see `flatten_record`), with normalised dtypes.

    Scratch runs get freeze depth 0 and source "scratch"; hub/file inits without a source
    dataset are named by their init.
    """
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    for col in ("num_stages", "freeze_depth", "target_size", "train_examples", "num_classes",
                "epochs", "batch_size", "seed", "split_seed", "best_epoch"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    for col in ("lr", "weight_decay", "wall_time_s"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    scratch = df["init"].eq("scratch")
    df.loc[scratch, "freeze_depth"] = 0
    df.loc[scratch, "source"] = "scratch"
    unnamed = df["source"].isna() & df["init"].isin(["hub", "file"])
    df.loc[unnamed, "source"] = df.loc[unnamed, "init"]
    df["freeze_depth"] = df["freeze_depth"].fillna(0)
    df.attrs["unreadable"] = []
    return df


def load_records(path: str | Path, *, workers: int | None = None) -> pd.DataFrame:
    """Every record of a study folder (or of every study under a results root) as one table.

    Unreadable files are skipped and listed as (path, reason) in ``df.attrs["unreadable"]``;
    ``df.attrs["results_root"]`` is the folder that checkpoint paths are relative to.
    """
    files, root = record_files(path)
    rows, bad = _parse_all([str(f) for f in files], workers)
    df = records_frame(rows)
    df.attrs["unreadable"] = sorted(bad)
    df.attrs["results_root"] = str(root)
    df.attrs["path"] = str(Path(path).resolve())
    return df
