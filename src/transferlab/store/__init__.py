"""The results store: the record schema, run identity, atomically written records, locks."""

from transferlab.store.identity import run_id, stage_config, stage_configs, stage_identity
from transferlab.store.records import (
    RecordError,
    ResultsStore,
    check_writable,
    is_current,
    read_record,
)
from transferlab.store.schema import FINAL_STATUSES, RECORD_SCHEMA, STATUSES, RunRecord

__all__ = [
    "FINAL_STATUSES",
    "RECORD_SCHEMA",
    "STATUSES",
    "RecordError",
    "ResultsStore",
    "RunRecord",
    "check_writable",
    "stage_identity",
    "is_current",
    "read_record",
    "run_id",
    "stage_config",
    "stage_configs",
]
