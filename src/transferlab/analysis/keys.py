"""The keys of the analysis, in one place: what a target setting, an arm, a cell, a shift pair
and a learning curve are, and how a record's identity settings map onto them.

A *cell* is a fine-tuned arm compared with the scratch arm of the same target setting. Every
setting that varies across a study's records is part of the cell, except the seed (runs are
paired on it) and the optimisation settings chosen per arm on validation (`HPARAMS`): settings
both arms share (optimizer, scheduler, image size, ...) form the `variant` column and must match
between a fine-tuned arm and its baseline; settings of the source stage (`source_size`,
`pretrain.*`, `init_path`) and of the fine-tuning method (`method.*`, which a scratch run does
not have) form `source_variant` and only tell fine-tuned arms apart.
"""

from __future__ import annotations

from transferlab.store.schema import STATUSES

#: The name of the from-scratch arm (its `source` column).
SCRATCH = "scratch"
#: A target setting: both arms of a cell are trained on it.
SETTING = ["study", "model", "target", "target_size", "variant"]
#: An arm: one way of training on a target setting (scratch, or a source at a freeze depth).
ARM = [*SETTING, "source", "freeze_depth", "source_variant"]
#: A (source, target) pair, for domain shift and estimators.
PAIR = ["study", "model", "source", "target"]
#: One learning curve: an arm over target sizes.
CURVE = ["study", "model", "target", "variant", "source", "freeze_depth", "source_variant"]
#: One row of the per-source summary.
SOURCE_SUMMARY = ["study", "model", "source"]
#: Swept optimisation settings chosen per arm on validation (record columns) ...
HPARAMS = ("lr", "weight_decay", "batch_size", "epochs")
#: ... and their names in a target record's identity.
HPARAM_KEYS = tuple(f"train.{h}" for h in HPARAMS)
#: Identity settings runs are paired on, not keyed on.
SEED_KEYS = ("seed", "pretrain.seed")
#: Identity settings already in the setting and arm columns (dataset specs by description).
NAMED_KEYS = ("stage", "identity_version", "model.name", "target_size", "init", "freeze_depth")
NAMED_PREFIXES = ("target.", "source.")
#: Identity settings of the source stage (or the weights a target started from).
SOURCE_SIDE_KEYS = ("source_size", "init_path")
SOURCE_SIDE_PREFIXES = ("pretrain.", "method.")
#: Statuses counted per arm.
STATUS_COUNTS = STATUSES


def split_identity(identity: dict) -> tuple[dict, dict]:
    """The identity settings that can vary within a cell's key: (shared, source side)."""
    shared, source_side = {}, {}
    for key, value in identity.items():
        if key in SEED_KEYS or key in HPARAM_KEYS or key in NAMED_KEYS:
            continue
        if key.startswith(NAMED_PREFIXES):
            continue
        if key in SOURCE_SIDE_KEYS or key.startswith(SOURCE_SIDE_PREFIXES):
            source_side[key] = value
        else:
            shared[key] = value
    return shared, source_side
