"""The results store: run identity (config hashes) and atomically written JSON records."""

from transferlab.store.hashing import normalized_run_config, run_id
from transferlab.store.records import (
    FINAL_STATUSES,
    RECORD_SCHEMA,
    STATUSES,
    RecordError,
    ResultsStore,
    atomic_write_json,
    read_record,
)

__all__ = [
    "RECORD_SCHEMA",
    "FINAL_STATUSES",
    "STATUSES",
    "RecordError",
    "ResultsStore",
    "atomic_write_json",
    "normalized_run_config",
    "read_record",
    "run_id",
]
