"""The evaluation stage: a finished target run's kept weights (`save_weights=true`) tested on
another dataset or shift, written as a record of stage `eval` that the analysis reads.

An evaluation record copies the evaluated run's record (its settings, identity, validation
metrics and chosen epoch, so the analysis selects learning rates and pairs seeds exactly as for
the run itself) and replaces its test metrics with those on the evaluation dataset's test split
(`evaluated_on`). Its identity is the evaluated run's plus the evaluation dataset's, so the same
evaluation twice is one record, skipped the second time. The test split of a view of the
run's own base dataset is the split the run never trained or selected on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from transferlab._helpers import plain
from transferlab.data import build_splits, describe, normalize_spec
from transferlab.errors import ConfigError
from transferlab.models import load_checkpoint
from transferlab.models.factory import load_checkpoint_model
from transferlab.models.inputs import UNIT_STATS, prepare
from transferlab.store import ResultsStore
from transferlab.store.fingerprint import content_identity
from transferlab.store.identity import identity_hash
from transferlab.store.provenance import git_commit, now, package_versions
from transferlab.store.schema import RunRecord
from transferlab.training.metrics import NegativeLogLikelihood, classification_metrics

log = logging.getLogger(__name__)

#: The stage name of an evaluation record.
EVAL_STAGE = "eval"
#: Prefix of the evaluation dataset's settings in an evaluation record's identity.
EVALUATED_ON = "evaluated_on"


def evaluable(store: ResultsStore) -> tuple[list[dict[str, Any]], list[str]]:
    """(completed target records whose weights were kept, run ids of those without weights)."""
    kept, missing = [], []
    for record in store.records():
        if record["stage"] != "target" or record["status"] != "completed":
            continue
        weights = record.get("checkpoint")
        if weights and (store.root / weights).is_file():
            kept.append(record)
        else:
            missing.append(record["run_id"])
    return kept, missing


def eval_identity(record: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluated run's identity with the stage and the evaluation dataset's settings."""
    on = content_identity(normalize_spec(plain(spec)))
    flat = {f"{EVALUATED_ON}.{k}": v for k, v in on.items() if k != "shifts"}
    flat[f"{EVALUATED_ON}.shifts"] = on.get("shifts", [])
    return {**record["identity"], **flat, "stage": EVAL_STAGE}


def test_split(store: ResultsStore, record: Mapping[str, Any], spec: Mapping[str, Any]) -> Any:
    """The evaluation dataset's test split at the run's image size, channels and split seed;
    a one-line ConfigError when its classes are not those the run's weights predict."""
    config = record["config"]
    splits = build_splits(
        spec,
        image_size=int(config["image_size"]),
        channels=int(config["channels"]),
        split_seed=int(record["split_seed"]),
        data_mode="auto",
    )
    classes = tuple(load_checkpoint(store.root / record["checkpoint"])["classes"])
    if tuple(splits.classes) != classes:
        raise ConfigError(
            f"{describe(spec)} has classes {list(splits.classes)}, the runs predict "
            f"{list(classes)} ({record['target']['description']}): evaluate on a dataset with "
            "the runs' label space"
        )
    return splits.test


@torch.no_grad()
def test_metrics(
    model: torch.nn.Module, stats: Any, split: Any, num_classes: int, batch_size: int
) -> dict[str, float]:
    """The metrics the training module reports on test, for `model` on `split`."""
    metrics, nll = classification_metrics(num_classes), NegativeLogLikelihood()
    for start in range(0, len(split), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(split)))
        logits = model(prepare(split.images_at(idx), stats)).float()
        labels = split.labels[idx]
        metrics.update(logits, labels)
        nll.update(logits, labels)
    values = {k: float(v) for k, v in metrics.compute().items()}
    values["nll"] = float(nll.compute())
    return values


def evaluate(
    store: ResultsStore, record: Mapping[str, Any], spec: Mapping[str, Any], force: bool = False
) -> dict[str, Any] | None:
    """Evaluate one run on one dataset and write the record; None when it was done before."""
    identity = eval_identity(record, spec)
    rid = identity_hash(identity)
    if not force and store.is_final(rid):
        return None
    started, started_at = time.perf_counter(), now()
    split = test_split(store, record, spec)
    model, meta = load_checkpoint_model(store.root / record["checkpoint"])
    stats = (meta["input_mean"], meta["input_std"]) if "input_mean" in meta else UNIT_STATS
    metrics = test_metrics(model, stats, split, len(meta["classes"]), int(record["batch_size"]))
    out = {
        **{k: v for k, v in record.items() if k in RunRecord.__dataclass_fields__},
        "run_id": rid,
        "stage": EVAL_STAGE,
        "identity": identity,
        "evaluated_run_id": record["run_id"],
        "evaluated_on": {"name": spec["name"], "description": describe(spec), "spec": plain(spec)},
        "metrics": {"val": record["metrics"]["val"], "test": metrics},
        "checkpoint": None,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "started_at": started_at,
        "finished_at": now(),
        "wall_time_s": time.perf_counter() - started,
        "train_samples_per_s": None,
    }
    store.write(RunRecord(**out))
    return out


def evaluate_study(
    path: Path, specs: list[Mapping[str, Any]] | None, force: bool = False
) -> tuple[int, int, list[str]]:
    """Evaluate every kept run of the study at `path` on each spec (None: the drift chain's
    evaluations, `training.drift.drift_evaluations`): (written, already done, run ids without
    kept weights). Every (run, spec) is checked (label space, size, channels) before any is
    evaluated, so a bad one is refused before a record is written."""
    from transferlab.training.drift import drift_evaluations

    store = ResultsStore(path.parent, path.name)
    runs, missing = evaluable(store)
    if not runs:
        raise ConfigError(
            f"no run of {path} kept its weights: train with save_weights=true to evaluate it"
        )
    if specs is None:
        pairs = drift_evaluations(runs)
        if not pairs:
            raise ConfigError(f"{path} holds no kept run of a drift chain (experiment=drift)")
    else:
        pairs = [(record, spec) for record in runs for spec in specs]
    for record, spec in pairs:
        test_split(store, record, spec)
    written = done = 0
    for record, spec in pairs:
        result = evaluate(store, record, spec, force)
        written, done = written + (result is not None), done + (result is None)
    return written, done, missing
