"""The on-disk cache of the tidy record table (`analysis.records.load_records`): columns of
arrays in one .npz, numbers as float64, strings (and anything else, as JSON text) as distinct
values and a code per row. Read with `allow_pickle=False`; made under a rules key, so a change
of what a record becomes makes it a miss. Imports nothing from its own package."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transferlab._helpers import atomic_write


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _encode_column(name: str, values: list[Any]) -> dict[str, np.ndarray]:
    """One column as arrays: numbers as float64 (NaN for None), strings (or, for anything
    else, JSON text) as their distinct values and a code per row, the validation curve
    flattened with its lengths."""
    if name == "val_curve":
        lengths = np.array([len(v) for v in values], dtype=np.int64)
        flat = [np.nan if x is None else float(x) for v in values for x in v]
        return {f"{name}.flat": np.array(flat, dtype=np.float64), f"{name}.len": lengths}
    present = [v for v in values if v is not None]
    if all(_is_number(v) for v in present):
        out = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        return {f"{name}.num": out}
    kind = "str" if all(isinstance(v, str) for v in present) else "json"
    codes: dict[str, int] = {}
    for v in present:
        codes.setdefault(v if kind == "str" else json.dumps(v), len(codes))
    index = [-1 if v is None else codes[v if kind == "str" else json.dumps(v)] for v in values]
    return {  # distinct values once (UTF-8), and a code per row (-1: None)
        f"{name}.{kind}": np.array([t.encode() for t in codes], dtype=bytes),
        f"{name}.codes": np.array(index, dtype=np.int32),
    }


def _decode_column(name: str, arrays: Any) -> np.ndarray:
    """One column in row order: float64 for numbers (NaN: missing; None where every value is
    missing, as the parsed rows hold it), otherwise objects (str, JSON values, curve tuples,
    None)."""
    if f"{name}.flat" in arrays:
        flat = [None if x != x else x for x in arrays[f"{name}.flat"].tolist()]
        lengths = arrays[f"{name}.len"].tolist()
        out = np.empty(len(lengths), dtype=object)
        out[:] = [tuple(flat[e - n : e]) for e, n in zip(np.cumsum(lengths).tolist(), lengths)]
        return out
    if f"{name}.num" in arrays:
        numbers = arrays[f"{name}.num"]
        if len(numbers) and np.isnan(numbers).all():
            return np.full(len(numbers), None, dtype=object)
        return numbers
    kind = "str" if f"{name}.str" in arrays else "json"
    decode = (lambda t: t) if kind == "str" else json.loads
    distinct = np.empty(len(arrays[f"{name}.{kind}"]) + 1, dtype=object)
    distinct[:] = [decode(t.decode()) for t in arrays[f"{name}.{kind}"].tolist()] + [None]
    return distinct[arrays[f"{name}.codes"]]  # code -1: the None at the end


def _values(column: np.ndarray) -> list[Any]:
    """A decoded column as the parsed rows hold it (a missing number is None)."""
    if column.dtype == object:
        return column.tolist()
    return [None if x != x else x for x in column.tolist()]


def read_table(path: Path, rules: str, columns: Sequence[str]) -> dict[str, Any] | None:
    """The cached table made under `rules` (its columns in row order, by name), or None.
    `table_rows` gives its rows. Arrays only (`allow_pickle=False`): a file under a results
    folder (shared, copied, downloaded) must never be able to run code when read."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if str(arrays["rules"]) != rules:
                return None
            decoded = {c: _decode_column(c, arrays) for c in columns}
            stamps = dict(
                zip(
                    arrays["stamps.path"].tolist(),
                    zip(arrays["stamps.mtime"].tolist(), arrays["stamps.size"].tolist()),
                )
            )
            bad = dict(zip(arrays["bad.path"].tolist(), arrays["bad.reason"].tolist()))
        return {"columns": decoded, "stamps": stamps, "bad": bad}
    except Exception:  # a missing, torn or foreign cache is only a cache miss
        return None


def table_rows(table: dict[str, Any], path_column: str) -> dict[str, tuple]:
    """The cached table's rows (tuples in column order), keyed by their `path_column`."""
    columns = table["columns"]
    paths = columns[path_column].tolist()
    return dict(zip(paths, zip(*(_values(c) for c in columns.values()))))


def write_table(
    path: Path, rules: str, columns: Sequence[str], files: dict, rows: dict, bad: dict
) -> None:
    """The table (rows of `columns`, each file's (mtime, size) stamp and the refused files
    with their reasons) as columns of arrays in one .npz (loads ~10x faster than JSON rows)."""
    table = list(rows.values())
    arrays: dict[str, np.ndarray] = {"rules": np.array(rules)}
    for i, name in enumerate(columns):
        arrays.update(_encode_column(name, [row[i] for row in table]))
    arrays["stamps.path"] = np.array(list(files), dtype=str)  # np.str_: fixed width, no pickle
    arrays["stamps.mtime"] = np.array([v[0] for v in files.values()], dtype=np.int64)
    arrays["stamps.size"] = np.array([v[1] for v in files.values()], dtype=np.int64)
    arrays["bad.path"] = np.array(list(bad), dtype=str)
    arrays["bad.reason"] = np.array(list(bad.values()), dtype=str)
    try:
        atomic_write(path, lambda handle: np.savez(handle, **arrays))
    except OSError:  # a read-only results folder: no cache, same answer
        pass
