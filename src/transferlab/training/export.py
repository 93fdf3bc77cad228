"""A study's source stages as weights files: candidates anyone can fine-tune with `init=file`.

`transferlab-export results/<study> --to DIR` writes each completed source stage's selected
weights as `DIR/<source>-e<epochs>-s<seed>.safetensors` (timm's format: the model's state dict,
its classifier included, so LEEP and NCE can read its predictions), with the class names the
classifier predicts in the file's metadata (a target of other classes then gets a new head, as
with `init=source`) and where the weights came from. `DIR/manifest.csv` lists every file with
its source run. A file's name is for people; a run that starts from it is identified by the
file's bytes (`init_weights`), wherever it lies and however it is named.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab._helpers import atomic_write, first_line
from transferlab.errors import ConfigError
from transferlab.models import load_checkpoint
from transferlab.models.weights import CLASSES_KEY, write_weights_file
from transferlab.store import RecordError, is_current, read_record
from transferlab.store.fingerprint import file_fingerprint

MANIFEST = "manifest.csv"
SUFFIX = ".safetensors"
#: Characters a file name keeps from a dataset's description (safe in a Hydra override too);
#: others become "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9.]+")
#: Leading characters of a run id that tell apart two sources of the same name.
_ID_CHARS = 8


def completed_sources(study_dir: Path) -> list[dict[str, Any]]:
    """The study's completed source-stage records made under the current identity rule."""
    found = []
    for path in sorted((study_dir / "records").glob("*.json")):
        try:
            record = read_record(path)
        except RecordError:
            continue
        if record["stage"] == "source" and record["status"] == "completed":
            if is_current(record) and record.get("checkpoint"):
                found.append(record)
    return found


def file_stem(record: dict[str, Any]) -> str:
    """`<source description>-e<epochs>-s<seed>`, with characters unsafe in a file name as `_`."""
    described = _UNSAFE.sub("_", record["source"]["description"]).strip("_")
    return f"{described}-e{record['epochs']}-s{record['seed']}"


def _stems(records: list[dict[str, Any]]) -> list[str]:
    """Each record's file stem; sources that share one (other model, lr, size) get their run
    id's first characters appended."""
    stems = [file_stem(r) for r in records]
    return [
        f"{stem}-{r['run_id'][:_ID_CHARS]}" if stems.count(stem) > 1 else stem
        for stem, r in zip(stems, records, strict=True)
    ]


def _metadata(record: dict[str, Any], payload: dict[str, Any]) -> dict[str, str]:
    """What a weights file says about itself: its classes, model and source run."""
    return {
        CLASSES_KEY: json.dumps(list(payload["classes"])),
        "transferlab.model": str(payload["model_name"]),
        "transferlab.model_kwargs": json.dumps(payload["model_kwargs"], sort_keys=True),
        "transferlab.source_run_id": str(record["run_id"]),
        "transferlab.source": str(record["source"]["description"]),
        "transferlab.epochs": str(record["epochs"]),
        "transferlab.best_epoch": str(record.get("best_epoch")),
        "transferlab.image_size": str(payload["image_size"]),
    }


def export_sources(study_dir: str | Path, to: str | Path) -> pd.DataFrame:
    """Write every completed source stage of `study_dir` as a weights file under `to`, plus
    `manifest.csv`; returns the manifest (one row per file). A checkpoint that is damaged is a
    one-line ConfigError (nothing half written: each file is replaced atomically)."""
    study_dir, to = Path(study_dir).resolve(), Path(to)
    records = completed_sources(study_dir)
    if not records:
        raise ConfigError(f"{study_dir} holds no completed source stage to export")
    rows = []
    for record, stem in zip(records, _stems(records), strict=True):
        payload = load_checkpoint(study_dir.parent / record["checkpoint"])
        try:
            path = write_weights_file(
                to / f"{stem}{SUFFIX}", payload["state_dict"], _metadata(record, payload)
            )
        except (OSError, RuntimeError) as exc:  # a folder that cannot be written, say
            raise ConfigError(f"cannot write {to / (stem + SUFFIX)}: {first_line(exc)}") from None
        rows.append(
            {
                "file": path.name,
                "source": record["source"]["description"],
                "model": record["model"],
                "epochs": record["epochs"],
                "best_epoch": record.get("best_epoch"),
                "seed": record["seed"],
                "lr": record.get("lr"),
                "source_size": record.get("source_size"),
                "classes": len(payload["classes"]),
                "source_run_id": record["run_id"],
                "init_weights": file_fingerprint(path),
            }
        )
    manifest = pd.DataFrame(rows)
    text = manifest.to_csv(index=False).encode()
    atomic_write(to / MANIFEST, lambda handle: handle.write(text))  # written last, whole
    return manifest
