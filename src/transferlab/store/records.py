"""JSON records of finished runs, written atomically: a reader sees a whole record or none.

Layout under the results root (see docs/records.md):
`<study>/records/<run_id>.json`, `<study>/runs/<run_id>/`, `cache/sources/<run_id>/`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

RECORD_SCHEMA = 1
RECORD_MODE = 0o644
STATUSES = ("completed", "diverged", "failed")
# Outcomes a re-launch keeps: a diverged run diverges again; a failed one is tried again.
FINAL_STATUSES = ("completed", "diverged")
REQUIRED_FIELDS = ("schema", "run_id", "study", "stage", "status", "config")


class RecordError(ValueError):
    """A record file that is unreadable, torn or not a record."""


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    """JSON has no NaN: non-finite floats are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def atomic_write_json(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write JSON to `path` through a temporary file in the same folder and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(dict(payload)), indent=1, sort_keys=True, default=_json_default)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, RECORD_MODE)  # mkstemp makes 0600; collaborators should read records
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(path: str | Path, run_id: str | None = None) -> dict[str, Any]:
    """Read and check one record; raise RecordError for a torn or foreign file.

    The record must hold `run_id` (default: the file's stem, as in `<run_id>.json`).
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RecordError(f"unreadable record {path}: {exc}") from exc
    if not isinstance(record, dict):
        raise RecordError(f"record {path} is not a JSON object")
    missing = [k for k in REQUIRED_FIELDS if k not in record]
    if missing:
        raise RecordError(f"record {path} lacks fields {missing}")
    if record["status"] not in STATUSES:
        raise RecordError(f"record {path} has unknown status {record['status']!r}")
    if record["run_id"] != (run_id or path.stem):
        raise RecordError(f"record {path} holds run {record['run_id']!r}")
    return record


class ResultsStore:
    """Paths and records of one study under a results root."""

    def __init__(self, root: str | Path, study: str) -> None:
        self.root = Path(root).resolve()
        self.study = study

    @property
    def study_dir(self) -> Path:
        return self.root / self.study

    @property
    def records_dir(self) -> Path:
        return self.study_dir / "records"

    def record_path(self, run_id: str) -> Path:
        return self.records_dir / f"{run_id}.json"

    def run_dir(self, run_id: str) -> Path:
        return self.study_dir / "runs" / run_id

    def source_cache_dir(self, run_id: str) -> Path:
        """Content-addressed home of a source checkpoint, shared by every study under the root."""
        return self.root / "cache" / "sources" / run_id

    def relative(self, path: str | Path) -> str:
        """A path relative to the results root, as records store it."""
        return str(Path(path).resolve().relative_to(self.root))

    def write(self, record: Mapping[str, Any]) -> Path:
        """Write a record atomically; returns its path."""
        if record["status"] not in STATUSES:
            raise ValueError(f"unknown status {record['status']!r}; valid choices: {STATUSES}")
        path = self.record_path(record["run_id"])
        atomic_write_json(path, {"schema": RECORD_SCHEMA, **record})
        return path

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The record of a run, or None when there is none or it is torn (then it is redone)."""
        path = self.record_path(run_id)
        if not path.exists():
            return None
        try:
            return read_record(path)
        except RecordError:
            return None

    def is_completed(self, run_id: str) -> bool:
        record = self.load(run_id)
        return record is not None and record["status"] == "completed"

    def is_final(self, run_id: str) -> bool:
        """Whether the run has an outcome a re-launch keeps (completed or diverged)."""
        record = self.load(run_id)
        return record is not None and record["status"] in FINAL_STATUSES

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable record of the study (torn ones are skipped)."""
        for path in sorted(self.records_dir.glob("*.json")):
            try:
                yield read_record(path)
            except RecordError:
                continue
