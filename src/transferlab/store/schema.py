"""The run record, declared once: its fields, their JSON types and meaning, and the status names.

The run code writes a `RunRecord`, the analysis loader reads these fields, the test simulator
builds `RunRecord`s, and the field table of docs/records.md is generated from this class
(`python -m transferlab.store.schema`; a test keeps the doc in step).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Version of the record layout; bump when a field changes meaning or name.
RECORD_SCHEMA = 2
#: Version of the rule that turns a config into a run id (see `transferlab.store.identity`):
#: a record made under another rule is never taken as this run being done. Also bumped when
#: the code changes what a config means: 4 keeps frozen BatchNorm statistics fixed under
#: Lightning 2.2+ (before, a run with freeze_depth > 0 let them adapt to the target); 5 adds
#: the fine-tuning method (`method.*`) to every transferred target run; 6 holds validation out
#: of the budget so that training examples nest across target sizes too (and drops `val_share`
#: from a pool-validated run); 7 splits each dataset's training pool into a source part and a
#: target part (targets draw their budget from theirs; a source of the target's base dataset
#: trains on the other), makes the frozen-feature shortcut, resumed runs and the methods exact,
#: and identifies datasets and weights that a path defines by their content; 8 draws the `noise`
#: shift's noise per example, from its seed and the example's origin (before, one draw ran over
#: a whole split, which a dataset streamed from disk per example cannot reproduce).
IDENTITY_VERSION = 8
#: How a run ended.
STATUSES = ("completed", "diverged", "failed")
#: Outcomes a re-launch keeps: a diverged run diverges again (so do the target runs of a
#: diverged source); a failed one is tried again.
FINAL_STATUSES = ("completed", "diverged")
#: The two training stages of a transfer run (pre-training on the source, training on the
#: target) and the evaluation of a target run's kept weights on another dataset
#: (`transferlab-eval`).
STAGES = ("source", "target", "eval")


def _doc(text: str, json_type: str, default: Any = dataclasses.MISSING) -> Any:
    """A record field with its meaning and JSON type, for the generated documentation."""
    meta = {"doc": text, "type": json_type}
    if default is dataclasses.MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


DATASET = "object \\| null"


@dataclass
class RunRecord:
    """One stage of one run, as written to ``<study>/records/<run_id>.json``."""

    run_id: str = _doc("first 16 hex digits of sha256 of `identity`", "str")
    study: str = _doc("study name (W&B group, `results/<study>/`)", "str")
    stage: str = _doc(
        "which dataset this stage trained on, `source` or `target`; or `eval`: a target run's "
        "kept weights tested on another dataset (`evaluated_on`)",
        "str",
    )
    status: str = _doc(
        "how the run ended: `completed`, `diverged` or `failed` (a target run whose source "
        "stage diverged is `diverged` too, and one whose source failed is `failed`)",
        "str",
    )
    error: str | None = _doc(
        "error text for `failed`, reason for `diverged` (`source stage <run_id> diverged: "
        "...` when it was the source stage)",
        "str \\| null",
    )
    init: str = _doc(
        "where the weights started: `scratch`, `source`, `hub`, `file` (`scratch` for a source "
        "stage)",
        "str",
    )
    model: str = _doc("timm model name", "str")
    freeze_depth: int = _doc(
        "first `freeze_depth` depth groups frozen; 0 = full fine-tuning, "
        "`num_depth_groups - 1` = linear probe; always 0 for scratch",
        "int",
    )
    source: dict | None = _doc(
        "`{name, description, spec}` of the source dataset: what a source stage trained on, "
        "what a target stage's weights came from (null unless init=source); with `objective` "
        "(e.g. `denoising(corruption=noise, strength=0.3)`) when it was pre-trained without "
        "its labels",
        DATASET,
    )
    target: dict | None = _doc(
        "`{name, description, spec}` of the target dataset (null for a source stage)", DATASET
    )
    source_size: int | None = _doc(
        "source training examples requested (null = the whole pool, or no source)", "int \\| null"
    )
    target_size: int | None = _doc(
        "target training examples requested, a class-stratified subsample (null = the whole "
        "pool; null for a source stage)",
        "int \\| null",
    )
    lr: float = _doc("learning rate of this stage's budget (`train` or `pretrain`)", "float")
    weight_decay: float = _doc("weight decay of this stage's budget", "float")
    epochs: int = _doc("epochs of this stage's budget", "int")
    batch_size: int = _doc("batch size of this stage's budget", "int")
    seed: int = _doc(
        "seed of this stage: subsample, initialisation, batch order (`pretrain.seed` for a "
        "source stage when set)",
        "int",
    )
    split_seed: int = _doc("seed of every dataset's validation and test split", "int")
    source_run_id: str | None = _doc(
        "run id of the source stage a target stage started from", "str \\| null"
    )
    source_checkpoint: str | None = _doc(
        "that source stage's checkpoint, relative to the results root", "str \\| null"
    )
    versions: dict = _doc(
        "versions of python, torch, lightning, timm, torchmetrics, hydra, wandb, transferlab",
        "object",
    )
    git_commit: str | None = _doc(
        "commit of the code that ran (null outside a checkout)", "str \\| null"
    )
    identity: dict = _doc(
        "every setting the run id covers, as flat dotted keys (`optimizer._target_`, "
        "`train.lr`, ...): the normalised run config minus the settings that cannot change a "
        "number (see docs/records.md, Run identity)",
        "object",
    )
    config: dict = _doc("the resolved config this stage ran with", "object")
    started_at: str = _doc("ISO-8601 UTC", "str")
    finished_at: str | None = _doc("ISO-8601 UTC", "str \\| null", None)
    wall_time_s: float | None = _doc(
        "wall time of the run's last attempt (a resumed run counts from its resume)",
        "float \\| null",
        None,
    )
    num_depth_groups: int | None = _doc(
        "depth groups of the model (stem, blocks..., head; see `transferlab.models.depth`)",
        "int \\| null",
        None,
    )
    trainable_parameters: int | None = _doc(
        "scalar parameters that trained (not frozen)", "int \\| null", None
    )
    train_examples: int | None = _doc("training examples actually used", "int \\| null", None)
    val_examples: int | None = _doc(
        "validation examples the epoch (and, in the analysis, the learning rate) was chosen on",
        "int \\| null",
        None,
    )
    val_protocol: str | None = _doc(
        "where they came from: `budget` (held out of the target's labelled budget) or `pool` "
        "(the dataset's fixed validation set: oracle validation for a few-shot target; always "
        "`pool` for a source stage)",
        "str \\| null",
        None,
    )
    num_classes: int | None = _doc("classes of the trained head", "int \\| null", None)
    head_reset: bool | None = _doc(
        "whether the classifier was re-initialised (null for scratch)", "bool \\| null", None
    )
    input_norm: dict | None = _doc(
        "`{mean, std}` per channel the [0, 1] pixels were standardised with (the model's "
        "pretrained statistics with `input_norm=model`; 0 and 1 with `unit`)",
        "object \\| null",
        None,
    )
    metrics: dict = _doc(
        '`{"val": {...}, "test": {...}}` at the selected epoch; keys `acc`, `f1`, `precision`, '
        "`recall`, `ece`, `nll`",
        "object",
        None,
    )
    best_epoch: int | None = _doc(
        "epoch chosen on validation accuracy (never on test); null for a source stage of no "
        "epochs (`pretrain.epochs=0`), whose initial weights are validated once",
        "int \\| null",
        None,
    )
    val_curve: list = _doc(
        "one `{epoch, acc, f1, precision, recall, ece, nll}` per epoch", "list", None
    )
    train_samples_per_s: float | None = _doc(
        "training throughput (a cohort member's: its own examples over the cohort's training time)",
        "float \\| null",
        None,
    )
    method: str | None = _doc(
        "how a transferred target stage trained: `finetune`, or another method with its "
        "settings, e.g. `lp_ft_shared(probe_share=0.5)` (null for a source stage or a scratch "
        "run)",
        "str \\| null",
        None,
    )
    phases: list | None = _doc(
        "how the epochs were spent: `[{phase, epochs}]` (LP-FT: the linear probe, then "
        "fine-tuning, each with the parameters it trained; `lp_ft` also gives the probe's own "
        "`lr`, `optimizer` and `scheduler`, fine-tuning then restarting both at the budget's "
        "learning rate; `lp_ft_shared` runs both phases in one optimiser and schedule)",
        "list \\| null",
        None,
    )
    adaptation: dict | None = _doc(
        "a domain adaptation stage's (`method=source_only|dann|coral`): `method`, `selection` "
        "(`source`: the epoch chosen on the source's validation set, no target label read; "
        "`oracle`: on the target's), `selected_on` in words, `source_examples`, "
        "`labelled_target_examples`, `unlabelled_target_examples`, and `shift`: the distances "
        "between the source's and the target's test sets on the selected model's features "
        "(`mmd2`, `mmd_p`, `proxy_a`, `frechet`, `otdd`, as the analysis's); null otherwise",
        "object \\| null",
        None,
    )
    evaluated_run_id: str | None = _doc(
        "an `eval` record's evaluated target run (its settings, identity and validation "
        "metrics are that run's; `metrics.test` is on `evaluated_on`)",
        "str \\| null",
        None,
    )
    evaluated_on: dict | None = _doc(
        "an `eval` record's dataset: `{name, description, spec}`; its test split was tested",
        "object \\| null",
        None,
    )
    checkpoint: str | None = _doc(
        "this stage's selected weights, relative to the results root: a source stage's "
        "always, a target stage's with `save_weights=true` (`runs/<run_id>/weights.pt`)",
        "str \\| null",
        None,
    )
    cohort: int | None = _doc(
        "how many runs (this one included) trained together as one vectorised model "
        "(`training/cohort.py`: same settings but seed and learning rate); null: it trained "
        "alone. Not part of the identity: a member's numbers are its lone run's up to float "
        "rounding",
        "int \\| null",
        None,
    )
    cluster_job: dict | None = _doc(
        "the Slurm job this stage ran in (`job_id`, `array_job_id`, `array_task_id`, "
        "`partition`, `node`, and `restart_count`: how often Slurm requeued it before this "
        "attempt finished); null outside Slurm",
        "object \\| null",
        None,
    )
    schema: int = _doc(f"record schema version ({RECORD_SCHEMA})", "int", RECORD_SCHEMA)
    identity_version: int = _doc(
        f"version of the run identity rule ({IDENTITY_VERSION})", "int", IDENTITY_VERSION
    )

    def __post_init__(self) -> None:
        if self.metrics is None:
            self.metrics = {}
        if self.val_curve is None:
            self.val_curve = []
        if self.status not in STATUSES:
            raise ValueError(
                f"unknown status {self.status!r}; valid choices: {', '.join(STATUSES)}"
            )
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; valid choices: {', '.join(STAGES)}")

    def to_dict(self) -> dict[str, Any]:
        """The record as the JSON object written to disk: a copy, sharing no dict or list with
        the record (as `dataclasses.asdict`, without its per-value deep copies)."""
        return {name: _copied(getattr(self, name)) for name in FIELDS}


def _copied(value: Any) -> Any:
    """A copy of a JSON-like value: its dicts, lists and tuples new, the rest shared."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copied(item) for item in value)
    return value


#: Every field of a record, in declaration order.
FIELDS = tuple(f.name for f in dataclasses.fields(RunRecord))
#: Fields a file must have to count as a record.
REQUIRED_FIELDS = ("schema", "run_id", "study", "stage", "status", "identity", "config")
#: Fields the run code always writes (those without a default).
_WRITTEN = tuple(f for f in dataclasses.fields(RunRecord) if f.default is dataclasses.MISSING)


#: Python types of the JSON types named in the field table.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (dict,),
    "list": (list,),
}
#: Metrics a completed record must carry as finite numbers, and their range.
REQUIRED_METRICS = (("val", "acc"), ("test", "acc"))
#: ... and those of a source stage trained without labels: its objective's loss.
UNLABELLED_METRICS = (("val", "loss"), ("test", "loss"))
ACCURACY_RANGE = (0.0, 1.0)


def _type_problem(name: str, value: Any, json_type: str) -> str | None:
    kinds = [k.strip() for k in json_type.replace("\\|", "|").split("|")]
    if value is None:
        return None if "null" in kinds else f"{name} is null"
    allowed = tuple(t for k in kinds for t in _JSON_TYPES.get(k, ()))
    if isinstance(value, bool) and bool not in allowed:
        return f"{name} is {value!r}, not {json_type.replace(chr(92), '')}"
    if allowed and not isinstance(value, allowed):
        return f"{name} is {value!r}, not {json_type.replace(chr(92), '')}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} is {value}"
    return None


def _required_metrics(record: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The metrics a completed record must carry: an accuracy, or for a source stage trained
    without labels (`pretrain/objective`: its source entry names the objective) its loss."""
    source = record.get("source")
    if record.get("stage") == "source" and isinstance(source, Mapping) and source.get("objective"):
        return UNLABELLED_METRICS
    return REQUIRED_METRICS


def _metric_problem(record: Mapping[str, Any]) -> str | None:
    """A completed record without its finite val and test accuracy (or objective loss), or
    with a non-finite metric."""
    metrics = record.get("metrics") or {}
    for split, key in _required_metrics(record):
        value = (metrics.get(split) or {}).get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"completed, but metrics.{split}.{key} is {value!r}"
        low, high = ACCURACY_RANGE
        if key == "acc" and not (math.isfinite(value) and low <= value <= high):
            return f"completed, but metrics.{split}.{key} is {value} (not in [{low}, {high}])"
    for split in ("val", "test"):
        for key, value in (metrics.get(split) or {}).items():
            if isinstance(value, float) and not math.isfinite(value):
                return f"completed, but metrics.{split}.{key} is {value}"
    return None


def record_problem(record: Any) -> str | None:
    """Why a record read from disk cannot enter an analysis (one line), or None if it can.

    Checks the schema version, that every field a run writes is present with its JSON type
    (finite numbers only), the status and stage names, and that a completed record carries a
    finite validation and test accuracy: a damaged record must never change a cell silently.
    """
    if not isinstance(record, Mapping):
        return "not a JSON object"
    if record.get("schema") != RECORD_SCHEMA:
        return (
            f"schema {record.get('schema')} record: made before run identities covered every "
            f"setting (this analysis reads schema {RECORD_SCHEMA}); re-run it"
        )
    missing = [f.name for f in _WRITTEN if f.name not in record]
    if missing:
        return f"not a whole record (lacks {', '.join(missing)})"
    for f in dataclasses.fields(RunRecord):
        if f.name in record and (
            problem := _type_problem(f.name, record[f.name], f.metadata["type"])
        ):
            return problem
    if record["status"] not in STATUSES:
        return f"unknown status {record['status']!r}; valid choices: {', '.join(STATUSES)}"
    if record["stage"] not in STAGES:
        return f"unknown stage {record['stage']!r}; valid choices: {', '.join(STAGES)}"
    if record["status"] == "completed":
        return _metric_problem(record)
    return None


def field_table() -> str:
    """The markdown table of docs/records.md: field, JSON type, meaning."""
    lines = ["| field | type | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(RunRecord):
        lines.append(f"| `{f.name}` | {f.metadata['type']} | {f.metadata['doc']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(field_table() + "\n")
