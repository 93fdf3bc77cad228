"""Load run records (docs/records.md) into one tidy pandas table, fast and without crashing.

Unreadable, torn or foreign files, and records that fail `store.schema.record_problem` (a
missing field, a wrong type, a completed run without a finite accuracy), are rejected: skipped
and listed with their reason in ``df.attrs["unreadable"]``, which the report lists. Only the
fields the analysis needs are kept (one row per record, `flatten.flatten_record`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferlab.analysis.flatten import ADAPTED_SHIFT_KEYS, COLUMNS, PATH_INDEX, flatten_record
from transferlab.analysis.keys import SCRATCH
from transferlab.analysis.table_cache import read_table, table_rows, write_table
from transferlab.store.schema import IDENTITY_VERSION

#: Below this many files the records are parsed in-process (a process pool costs more).
PARALLEL_MIN_FILES = 4000
#: Files handed to one worker task.
CHUNK_FILES = 2000
#: Characters of a rejected file's reason that are kept.
MAX_REASON = 300
#: Version of the on-disk table cache's layout (bump when COLUMNS change).
CACHE_VERSION = 10
#: Modules whose code decides what a record becomes in the table, or whether it is refused
#: (the identity rule, the schema, the validation here and the flattening).
RULE_MODULES = (
    "analysis/records.py",
    "analysis/flatten.py",
    "analysis/table_cache.py",
    "analysis/keys.py",
    "store/schema.py",
    "store/identity.py",
)


def _rules_key() -> str:
    """What the cached rows were made under: the layout version, the identity rule's version
    and the code of RULE_MODULES. Any change makes the cache a miss, so a record an updated
    rule refuses never re-enters the numbers from the cache."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"{CACHE_VERSION}|{IDENTITY_VERSION}".encode())
    for name in RULE_MODULES:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()


class RecordsPathError(FileNotFoundError):
    """The path is neither a study folder (with records/) nor a results root holding studies."""


def _json_files(folder: Path) -> dict[str, tuple[int, int]]:
    """Record files of a records/ folder with (size, mtime_ns), from one directory scan."""
    out = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".json") and entry.is_file():
                st = entry.stat()
                out[entry.path] = (st.st_size, st.st_mtime_ns)
    return out


def record_folders(path: str | Path) -> tuple[list[Path], Path]:
    """The records/ folders under a study folder, a records/ folder itself, or a results root,
    and the results root that checkpoint paths in the records are relative to."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise RecordsPathError(f"no such folder: {path}")
    path = path.resolve()
    if path.name == "records" and not (path / "records").is_dir():
        return [path], path.parent.parent
    if (path / "records").is_dir():
        return [path / "records"], path.parent
    folders = sorted(p for p in path.glob("*/records") if p.is_dir())
    if not folders:
        raise RecordsPathError(
            f"{path} holds no records/ folder (neither a study nor a results root)"
        )
    return folders, path


def record_files(path: str | Path) -> tuple[dict[str, tuple[int, int]], Path]:
    """Record files (path -> (size, mtime_ns)) under ``path`` (see `record_folders`)."""
    folders, root = record_folders(path)
    files: dict[str, tuple[int, int]] = {}
    for folder in folders:
        files.update(_json_files(folder))
    return dict(sorted(files.items())), root


def _parse_files(paths: Sequence[str]) -> tuple[list[tuple], list[tuple[str, str]]]:
    """Parse a chunk of files; returns rows (tuples in COLUMNS order) and (path, reason) for
    the unreadable ones."""
    rows: list[tuple] = []
    bad: list[tuple[str, str]] = []
    for name in paths:
        try:
            with open(name, "rb") as handle:
                record = json.loads(handle.read())
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            row = flatten_record(record, name)
            rows.append(tuple(row[c] for c in COLUMNS))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            reason = str(exc) if type(exc) is ValueError else f"{type(exc).__name__}: {exc}"
            bad.append((name, reason[:MAX_REASON]))
    return rows, bad


def _parse_all(paths: list[str], workers: int | None) -> tuple[list[tuple], list[tuple[str, str]]]:
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(paths) < PARALLEL_MIN_FILES:
        return _parse_files(paths)
    chunks = [paths[i : i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    rows: list[tuple] = []
    bad: list[tuple[str, str]] = []
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for chunk_rows, chunk_bad in pool.map(_parse_files, chunks):
                rows.extend(chunk_rows)
                bad.extend(chunk_bad)
    except (OSError, RuntimeError):  # no process pool here (sandbox, frozen app): parse inline
        return _parse_files(paths)
    return rows, bad


def records_frame(rows: Iterable[Mapping[str, Any] | tuple]) -> pd.DataFrame:
    """The tidy table from flattened rows (`flatten_record` dicts, or tuples in COLUMNS order),
    with normalised dtypes (see `_normalised`)."""
    return _normalised(_shared_strings(pd.DataFrame(list(rows), columns=list(COLUMNS))))


def _shared_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Equal strings of a column as one object, as the table cache's columns hold them: each
    parsed file brings its own copies, and pandas groups and merges on shared strings about
    twice as fast (equal by identity, their hash computed once)."""
    for col in df.columns:
        if isinstance(df[col].dtype, pd.StringDtype):
            canon: dict[str, str] = {}
            values = [canon.setdefault(v, v) if isinstance(v, str) else v for v in df[col]]
            df[col] = pd.Series(values, index=df.index, dtype=df[col].dtype)
    return df


def _normalised(df: pd.DataFrame) -> pd.DataFrame:
    """Whole numbers as Int64, real numbers as float, and every run named by its arm.

    Scratch runs are named by the arm "scratch"; an init=file run by its weights file's name;
    hub inits (and file inits of records without a config) by their init (records already
    carry freeze depth 0 for scratch).
    """
    for col in (
        "num_depth_groups",
        "freeze_depth",
        "target_size",
        "source_size",
        "drift_step",
        "drift_on_step",
        "train_examples",
        "num_classes",
        "epochs",
        "batch_size",
        "seed",
        "split_seed",
        "best_epoch",
    ):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    for col in ("lr", "weight_decay", "wall_time_s", *(f"adapted_{k}" for k in ADAPTED_SHIFT_KEYS)):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df.loc[df["init"].eq("scratch"), "source"] = SCRATCH
    unnamed = df["source"].isna() & df["init"].isin(["hub", "file"])
    df.loc[unnamed, "source"] = df.loc[unnamed, "init"]
    df["freeze_depth"] = df["freeze_depth"].fillna(0)
    df.attrs["unreadable"] = []
    return df


def _cached_frame(cached: dict[str, Any], files: dict[str, tuple[int, int]]) -> pd.DataFrame | None:
    """The table straight from the cache's columns, rows in `files` order, where the cache
    holds exactly `files` as they are now (None otherwise: some rows must be parsed again).
    The same table `records_frame` makes from the rows, built column by column."""
    stamps, bad = cached["stamps"], cached["bad"]
    if len(stamps) != len(files) or any(stamps.get(p) != stamp for p, stamp in files.items()):
        return None
    paths = cached["columns"]["path"]
    if len(paths) + len(bad) != len(files):
        return None
    position = {p: i for i, p in enumerate(paths.tolist())}
    order = np.array([position[p] for p in files if p not in bad], dtype=np.int64)
    return _normalised(pd.DataFrame({c: cached["columns"][c][order] for c in COLUMNS}))


def _cache_path(root: Path, path: Path) -> Path:
    digest = hashlib.sha256(f"{CACHE_VERSION}|{path}".encode()).hexdigest()[:16]  # per study
    return root / "cache" / "analysis" / f"records-{digest}.npz"


def _parse_changed(
    cache_file: Path,
    files: dict[str, tuple[int, int]],
    cached: dict | None,
    cache: bool,
    workers: int | None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The table with the files new or changed since the cache was written parsed again (every
    file without a cache), the cache brought up to date; and the refused files' reasons."""
    old_rows: dict[str, tuple] = {}
    old_bad: dict[str, str] = {}
    if cached is not None:
        stamps = cached["stamps"]
        rows = table_rows(cached, "path")
        old_rows = {p: r for p, r in rows.items() if stamps.get(p) == files.get(p)}
        old_bad = {p: r for p, r in cached["bad"].items() if stamps.get(p) == files.get(p)}
    todo = [p for p in files if p not in old_rows and p not in old_bad]
    new_rows, new_bad = _parse_all(todo, workers)
    rows = {**old_rows, **{r[PATH_INDEX]: r for r in new_rows}}
    bad = {**old_bad, **dict(new_bad)}
    if cache and (todo or cached is None or len(cached["stamps"]) != len(files)):
        write_table(cache_file, _rules_key(), COLUMNS, files, rows, bad)
    return records_frame(rows[p] for p in files if p in rows), bad


def load_records(
    path: str | Path, *, workers: int | None = None, cache: bool = True
) -> pd.DataFrame:
    """Every record of a study folder (or of every study under a results root) as one table.

    Unreadable files are skipped and listed as (path, reason) in ``df.attrs["unreadable"]``;
    ``df.attrs["results_root"]`` is the folder that checkpoint paths are relative to. With
    ``cache`` the parsed rows are kept in <results root>/cache/analysis/ and only files whose
    size or modification time changed are parsed again.
    """
    files, root = record_files(path)
    if not files:
        raise RecordsPathError(f"{path} holds no record files: nothing to analyse")
    resolved = Path(path).expanduser().resolve()
    cache_file = _cache_path(root, resolved)
    cached = read_table(cache_file, _rules_key(), COLUMNS) if cache else None
    df = _cached_frame(cached, files) if cached is not None else None
    if df is not None:  # nothing changed since the cache was written
        bad = {p: r for p, r in cached["bad"].items() if p in files}
    else:
        df, bad = _parse_changed(cache_file, files, cached, cache, workers)
    df.attrs["unreadable"] = sorted(bad.items())
    if df.empty:
        first, reason = df.attrs["unreadable"][0]
        raise RecordsPathError(
            f"none of the {len(files)} record files under {path} can be analysed "
            f"(e.g. {Path(first).name}: {reason})"
        )
    df.attrs["results_root"] = str(root)
    df.attrs["path"] = str(resolved)
    return df
