"""The run record, declared once: its fields, their JSON types and meaning, and the status names.

The run code writes a `RunRecord`, the analysis loader reads these fields, the test simulator
builds `RunRecord`s, and the field table of docs/records.md is generated from this class
(`python -m transferlab.store.schema`; a test keeps the doc in step).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any

#: Version of the record layout; bump when a field changes meaning or name.
RECORD_SCHEMA = 2
#: Version of the rule that turns a config into a run id (see `transferlab.store.identity`):
#: a record made under another rule is never taken as this run being done.
IDENTITY_VERSION = 2
#: How a run ended.
STATUSES = ("completed", "diverged", "failed")
#: Outcomes a re-launch keeps: a diverged run diverges again; a failed one is tried again.
FINAL_STATUSES = ("completed", "diverged")
#: The two training stages of a transfer run: pre-training on the source, training on the target.
STAGES = ("source", "target")


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
    stage: str = _doc("which dataset this stage trained on: `source` or `target`", "str")
    status: str = _doc("how the run ended: `completed`, `diverged` or `failed`", "str")
    error: str | None = _doc("error text for `failed`, reason for `diverged`", "str \\| null")
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
        "what a target stage's weights came from (null unless init=source)",
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
    num_classes: int | None = _doc("classes of the trained head", "int \\| null", None)
    head_reset: bool | None = _doc(
        "whether the classifier was re-initialised (null for scratch)", "bool \\| null", None
    )
    metrics: dict = _doc(
        '`{"val": {...}, "test": {...}}` at the selected epoch; keys `acc`, `f1`, `precision`, '
        "`recall`, `ece`, `nll`",
        "object",
        None,
    )
    best_epoch: int | None = _doc(
        "epoch chosen on validation accuracy (never on test)", "int \\| null", None
    )
    val_curve: list = _doc(
        "one `{epoch, acc, f1, precision, recall, ece, nll}` per epoch", "list", None
    )
    train_samples_per_s: float | None = _doc("training throughput", "float \\| null", None)
    checkpoint: str | None = _doc(
        "this stage's selected weights (source stages), relative to the results root",
        "str \\| null",
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
        """The record as the JSON object written to disk."""
        return dataclasses.asdict(self)


#: Every field of a record, in declaration order.
FIELDS = tuple(f.name for f in dataclasses.fields(RunRecord))
#: Fields a file must have to count as a record.
REQUIRED_FIELDS = ("schema", "run_id", "study", "stage", "status", "identity", "config")


def field_table() -> str:
    """The markdown table of docs/records.md: field, JSON type, meaning."""
    lines = ["| field | type | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(RunRecord):
        lines.append(f"| `{f.name}` | {f.metadata['type']} | {f.metadata['doc']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(field_table() + "\n")
