"""JSON records of finished runs, written atomically: a reader sees a whole record or none.

Layout under the results root (see docs/records.md):
`<study>/records/<run_id>.json`, `<study>/runs/<run_id>/`, `cache/sources/<run_id>/`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from transferlab._helpers import atomic_write_json
from transferlab.errors import ConfigError
from transferlab.store.schema import (
    FINAL_STATUSES,
    IDENTITY_VERSION,
    REQUIRED_FIELDS,
    STATUSES,
    RunRecord,
)


def check_writable(folder: Path, setting: str) -> None:
    """Create `folder` and write a probe file in it: a results path that is a file, or a folder
    this process cannot write, is a one-line error before any training."""
    probe = folder / f".write-probe-{os.getpid()}"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{setting}={folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"{setting}={folder} is not a folder this process can write ({reason})"
        ) from None


class RecordError(ValueError):
    """A record file that is unreadable, torn or not a record."""


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


def is_current(record: Mapping[str, Any] | None) -> bool:
    """Whether a record was made under the current run identity rule."""
    return record is not None and record.get("identity_version") == IDENTITY_VERSION


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

    def write(self, record: RunRecord | Mapping[str, Any]) -> Path:
        """Write a record atomically (checked against the schema); returns its path."""
        record = record if isinstance(record, RunRecord) else RunRecord(**record)
        return atomic_write_json(self.record_path(record.run_id), record.to_dict())

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
        """Whether the run completed under the current identity rule."""
        record = self.load(run_id)
        return is_current(record) and record["status"] == "completed"

    def is_final(self, run_id: str, needs_weights: bool = False) -> bool:
        """Whether the run has an outcome a re-launch keeps (completed or diverged) under the
        current identity rule: a record made under an older rule is redone, and so is a
        completed run whose weights are wanted (`needs_weights`) but were not kept."""
        record = self.load(run_id)
        if not (is_current(record) and record["status"] in FINAL_STATUSES):
            return False
        if needs_weights and record["status"] == "completed":
            kept = record.get("checkpoint")
            return kept is not None and (self.root / kept).is_file()
        return True

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable record of the study (torn ones are skipped)."""
        for path in sorted(self.records_dir.glob("*.json")):
            try:
                yield read_record(path)
            except RecordError:
                continue
