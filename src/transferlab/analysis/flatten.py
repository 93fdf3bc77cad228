"""One record (docs/records.md) as one row of the analysis' tidy table: nested fields
flattened, missing ones None or NaN, the identity settings that may vary within a cell's key as
two canonical strings. A record the schema refuses, or one made under another identity rule,
raises ValueError with the reason (`records.load_records` lists it as unreadable).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.analysis.keys import EVALUATED, split_identity
from transferlab.store.schema import IDENTITY_VERSION, record_problem

#: Metrics copied from ``metrics.val`` and ``metrics.test``.
METRIC_KEYS = ("acc", "nll", "ece")
#: Distances an adaptation stage measured on its selected model's features (`adaptation.shift`),
#: copied as ``adapted_<name>``.
ADAPTED_SHIFT_KEYS = ("mmd2", "proxy_a", "frechet", "otdd")
#: Columns of the tidy table, in order.
COLUMNS = (
    "run_id",
    "study",
    "stage",
    "status",
    "error",
    "init",
    "model",
    "num_depth_groups",
    "method",
    "freeze_depth",
    "source",
    "target",
    "target_size",
    "source_size",
    "variant_key",
    "source_variant_key",
    "train_examples",
    "num_classes",
    "lr",
    "weight_decay",
    "epochs",
    "batch_size",
    "seed",
    "split_seed",
    "val_protocol",
    *(f"{split}_{key}" for split in ("val", "test") for key in METRIC_KEYS),
    "adapt_selection",
    "drift_step",
    "drift_on_step",
    *(f"adapted_{key}" for key in ADAPTED_SHIFT_KEYS),
    "best_epoch",
    "val_curve",
    "source_run_id",
    "source_checkpoint",
    "wall_time_s",
    "finished_at",
    "path",
)
PATH_INDEX = COLUMNS.index("path")


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


def _source_name(source: Any, init: Any = None) -> Any:
    """A source's description, with the objective it was pre-trained on when that did not
    read its labels (`digits, denoising(corruption=noise, strength=0.3)`), and `sequential`
    for a drift step fine-tuned from the previous step (`init=previous`)."""
    name = _name(source)
    objective = source.get("objective") if isinstance(source, Mapping) else None
    name = f"{name}, {objective}" if name and objective else name
    return f"{name}, sequential" if name and init == "previous" else name


def _weights_name(record: Mapping[str, Any]) -> Any:
    """An `init=file` run's arm is named by its weights file (without the suffix); which
    weights they are is its `init_weights` fingerprint, in the source variant."""
    path = (record.get("config") or {}).get("init_path") if record.get("init") == "file" else None
    return Path(str(path)).stem if path else None


def _drift_steps(record: Mapping[str, Any]) -> tuple[Any, Any]:
    """(the drift step a run trained at, the step whose test set it was tested on: another for
    an evaluation), or (None, None) off a chain."""
    drift = (record.get("config") or {}).get("drift")
    if not drift:
        return None, None
    step = int(drift["step"])
    if record.get("stage") != "eval":
        return step, step
    from transferlab.data import describe  # cheap: no data is loaded

    chain = [describe(spec) for spec in drift["chain"]]
    on = _name(record.get("evaluated_on"))
    return step, chain.index(on) if on in chain else None


def _target_name(record: Mapping[str, Any]) -> Any:
    """The target's description; an evaluation's names the dataset it was tested on too."""
    target = _name(record.get("target"))
    if record.get("stage") == "eval" and target is not None:
        return EVALUATED.format(target=target, evaluated_on=_name(record.get("evaluated_on")))
    return target


def _canonical(settings: Mapping[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)


def flatten_record(record: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """One tidy row from a record: nested fields flattened, missing ones None/NaN.

    The identity settings that may vary within a cell's key become two canonical strings
    (`variant_key`, `source_variant_key`; see analysis.keys).
    """
    if (problem := record_problem(record)) is not None:
        raise ValueError(problem)
    if (version := record.get("identity_version")) != IDENTITY_VERSION:
        raise ValueError(
            f"made under run identity rule {version} (this transferlab uses {IDENTITY_VERSION}):"
            " superseded, not analysed; re-run the study to replace it"
        )
    shared, source_side = split_identity(dict(record["identity"]))
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
        "num_depth_groups": record.get("num_depth_groups"),
        "method": record.get("method") or "",
        "freeze_depth": record.get("freeze_depth"),
        "source": _source_name(record.get("source"), record.get("init")) or _weights_name(record),
        "target": _target_name(record),
        "target_size": record.get("target_size"),
        "source_size": record.get("source_size"),
        "variant_key": _canonical(shared),
        "source_variant_key": _canonical(source_side) if source_side else "",
        "train_examples": record.get("train_examples"),
        "num_classes": record.get("num_classes"),
        "lr": record.get("lr"),
        "weight_decay": record.get("weight_decay"),
        "epochs": record.get("epochs"),
        "batch_size": record.get("batch_size"),
        "seed": record.get("seed"),
        "split_seed": record.get("split_seed"),
        "val_protocol": record.get("val_protocol") or "pool",
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
    row["drift_step"], row["drift_on_step"] = _drift_steps(record)
    adaptation = record.get("adaptation") or {}
    row["adapt_selection"] = adaptation.get("selection")
    for key in ADAPTED_SHIFT_KEYS:
        row[f"adapted_{key}"] = _metric(adaptation, "shift", key)
    return row
