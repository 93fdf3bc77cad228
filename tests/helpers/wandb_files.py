"""Read W&B offline run files (`run-<id>.wandb`) back, to check what a run logged.

The file is a LevelDB-style log of protobuf `Record`s: a 7-byte header (":W&B", magic,
version), then 32 KiB blocks of chunks, each with a 7-byte header (crc32, length, type).
wandb's own Python reader moved into its Go core, so the tests carry this small one.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2

#: How long a test waits for W&B's service to finish a run's file: it writes asynchronously, and
#: under load its last records (history, summary, exit) come after `run.finish()` returned.
FINISH_WAIT_S = 60
HEADER_SIZE = 7
BLOCK_SIZE = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks(data: bytes):
    offset = HEADER_SIZE
    while offset + CHUNK_HEADER <= len(data):
        block_left = BLOCK_SIZE - (offset % BLOCK_SIZE)
        if block_left < CHUNK_HEADER:
            offset += block_left
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + CHUNK_HEADER])
        start = offset + CHUNK_HEADER
        if kind == 0 and length == 0:
            offset += block_left
            continue
        yield kind, data[start : start + length]
        offset = start + length


def read_records(path: str | Path) -> list[Any]:
    """Every protobuf Record in an offline run file, in order."""
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    records, pending = [], b""
    for kind, payload in _chunks(data):
        if kind == FULL:
            pending = payload
        elif kind == FIRST:
            pending = payload
            continue
        elif kind == MIDDLE:
            pending += payload
            continue
        elif kind == LAST:
            pending += payload
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        records.append(record)
        pending = b""
    return records


def finished(path: str | Path) -> Path:
    """`path` once W&B has written the run's exit record (its file's last record); a run file
    without one after FINISH_WAIT_S fails the test."""
    deadline = time.monotonic() + FINISH_WAIT_S
    while True:
        try:
            if any(r.WhichOneof("record_type") == "exit" for r in read_records(path)):
                return Path(path)
        except DecodeError:  # a record still being written
            pass
        assert time.monotonic() < deadline, f"{path}: no exit record after {FINISH_WAIT_S} s"
        time.sleep(0.2)


def summarize(path: str | Path) -> dict[str, Any]:
    """The run's identity and the metric keys and config keys it logged."""
    out: dict[str, Any] = {
        "history_keys": set(),
        "config_keys": set(),
        "history": [],
        "artifacts": [],
    }
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.update(
                id=run.run_id,
                group=run.run_group,
                job_type=run.job_type,
                tags=list(run.tags),
                notes=run.notes,
                project=run.project,
            )
            out["config_keys"].update(item.key for item in run.config.update)
        elif kind == "history":
            row = {
                item.key or "/".join(item.nested_key): item.value_json
                for item in record.history.item
            }
            out["history"].append(row)
            out["history_keys"].update(row)
        elif kind == "artifact":
            out["artifacts"].append((record.artifact.name, record.artifact.type))
        elif kind == "config":
            out["config_keys"].update(
                item.key or "/".join(item.nested_key) for item in record.config.update
            )
    return out


def table_rows(table_json: str | Path) -> list[dict[str, Any]]:
    """Rows of a logged W&B table read back from its .table.json file."""
    data = json.loads(Path(table_json).read_text())
    return [dict(zip(data["columns"], row)) for row in data["data"]]
