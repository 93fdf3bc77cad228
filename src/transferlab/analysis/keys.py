"""The keys of the analysis, in one place: what a target setting, an arm, a cell, a shift pair
and a learning curve are, and how a record's identity settings map onto them.

A *cell* is a fine-tuned arm compared with the scratch arm of the same target setting. Every
setting that varies across a study's records is part of the cell, except the seed (runs are
paired on it) and the optimisation settings chosen per arm on validation (`HPARAMS`): settings
both arms share (optimizer, scheduler, image size, ...) form the `variant` column and must match
between a fine-tuned arm and its baseline; settings of the source stage (`source_size`,
`pretrain.*`, `init_weights`) form `source_variant` and only tell fine-tuned arms apart, as the
fine-tuning method does (`method`: its name and settings, from the record).
"""

from __future__ import annotations

from transferlab.store.schema import STATUSES

#: The name of the from-scratch arm (its `source` column).
SCRATCH = "scratch"
#: A target setting: both arms of a cell are trained on it.
SETTING = ["study", "model", "target", "target_size", "variant"]
#: What tells the arms of one target setting apart (scratch: source `scratch`, no method).
ARM_KEYS = ["source", "method", "freeze_depth", "source_variant"]
#: An arm: one way of training on a target setting (scratch, or a source with a fine-tuning
#: method, at a freeze depth for `finetune`).
ARM = [*SETTING, *ARM_KEYS]
#: A (source, target) pair, for domain shift and estimators.
PAIR = ["study", "model", "source", "target"]
#: One learning curve: an arm over target sizes.
CURVE = ["study", "model", "target", "variant", *ARM_KEYS]
#: One row of the per-source summary.
SOURCE_SUMMARY = ["study", "model", "source"]
#: Swept optimisation settings chosen per arm on validation (record columns) ...
HPARAMS = ("lr", "weight_decay", "batch_size", "epochs")
#: ... and their names in a target record's identity.
HPARAM_KEYS = tuple(f"train.{h}" for h in HPARAMS)
#: Identity settings runs are paired on, not keyed on. `pretrain.seed` is one of them only
#: while null (each run seed pre-trains its own source); set, it names the source checkpoint
#: the fine-tuned arm starts from, so a swept `pretrain.seed` is a `source_variant`.
SEED_KEYS = ("seed",)
FOLLOWS_SEED = ("pretrain.seed",)
#: Identity settings already in the setting and arm columns (dataset specs by description, a
#: source's objective in its name).
NAMED_KEYS = ("stage", "identity_version", "model.name", "target_size", "init", "freeze_depth")
NAMED_PREFIXES = (
    "target.",
    "source.",
    "method.",
    "evaluated_on.",
    "pretrain.objective.",
    "drift.",  # a drift step's target names it (the chain is the recipe's)
)
#: Stages whose records are arms of a cell: target runs, and their evaluations on another
#: dataset (`transferlab-eval`), whose `target` names both datasets (`EVALUATED`).
TARGET_STAGES = ("target", "eval")
EVALUATED = "{target}, tested on {evaluated_on}"
#: Identity settings of the source stage (or the weights a target started from).
SOURCE_SIDE_KEYS = ("source_size", "init_weights")
SOURCE_SIDE_PREFIXES = ("pretrain.",)
#: Statuses counted per arm.
STATUS_COUNTS = STATUSES


def split_identity(identity: dict) -> tuple[dict, dict]:
    """The identity settings that can vary within a cell's key: (shared, source side)."""
    shared, source_side = {}, {}
    for key, value in identity.items():
        if key in SEED_KEYS or key in HPARAM_KEYS or key in NAMED_KEYS:
            continue
        if key in FOLLOWS_SEED and value is None:
            continue
        if key.startswith(NAMED_PREFIXES):
            continue
        if key in SOURCE_SIDE_KEYS or key.startswith(SOURCE_SIDE_PREFIXES):
            source_side[key] = value
        else:
            shared[key] = value
    return shared, source_side
