"""Check a run config before anything trains: one source of truth per setting, then every value.

Each problem is a ConfigError whose message is one line naming the bad value and the valid
choices; the command line prints it and exits with status 2.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from transferlab._helpers import plain
from transferlab.adaptation import is_adaptation
from transferlab.adaptation.data import check_label_spaces, target_parts
from transferlab.data import (
    budget_split,
    build_splits,
    normalize_spec,
    source_pool,
    stratified_subset,
    validate_spec,
)
from transferlab.errors import ConfigError, choice_error
from transferlab.models import INIT_CHOICES, validate_model
from transferlab.store.identity import STAGE_ALIASES, normalize_run_config
from transferlab.training.config_schema import BUDGET_IS_A_REFERENCE, check_run_config
from transferlab.training.drift import PREVIOUS, check_drift

#: Settings that presets take from the stage budget: each must stay this reference, so that the
#: budget (`train.*` for the target stage, `pretrain.*` for the source stage) is the only place
#: a learning rate or an epoch count is set. `required` ones must be present.
BUDGET_REFERENCES = {
    "optimizer.lr": ("${budget.lr}", "lr", True),
    "optimizer.weight_decay": ("${budget.weight_decay}", "weight_decay", True),
    "trainer.max_epochs": ("${budget.epochs}", "epochs", True),
    "scheduler.T_max": ("${budget.epochs}", "epochs", False),
}
#: Trainer arguments the code passes itself, from the `logger` and `callbacks` groups
#: (Lightning's own checkpointing follows the callbacks: on only with a ModelCheckpoint there).
CODE_OWNED = ("logger", "callbacks", "default_root_dir", "enable_checkpointing")
#: The callback whose weights the test runs on (the epoch chosen on validation).
SELECTION_CALLBACK = "selection"
#: The callback writing the checkpoint a killed run resumes from (left out when resume=false).
RESUME_CALLBACK = "resume_checkpoint"
#: The `method` presets that adapt to an unlabelled target.
ADAPTATION_PRESETS = "source_only | dann | coral"
#: What the selection callback can do with its monitored metric.
SELECTION_MODES = ("max", "min")
_UNSET = object()


def _unresolved(cfg: DictConfig, dotted: str) -> Any:
    """The value at `dotted` as written (interpolations unresolved); _UNSET when absent."""
    parent, _, leaf = dotted.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    if not isinstance(node, DictConfig):
        return _UNSET
    return OmegaConf.to_container(node, resolve=False).get(leaf, _UNSET)


def check_structure(cfg: DictConfig) -> None:
    """The checks a run id needs first: a known init, and no setting given in two places (the
    budget is the only home of lr, weight decay and epochs; the logger and callbacks groups the
    only home of the trainer's loggers and callbacks)."""
    if cfg.init not in INIT_CHOICES:
        raise choice_error("init", cfg.init, INIT_CHOICES)
    budget = _unresolved(cfg, "budget")
    if budget != STAGE_ALIASES["target"]["budget"]:
        raise ConfigError(f"budget={budget} cannot be set: {BUDGET_IS_A_REFERENCE}")
    for key, (reference, field, required) in BUDGET_REFERENCES.items():
        value = _unresolved(cfg, key)
        if (value is _UNSET and not required) or value == reference:
            continue
        shown = "missing" if value is _UNSET else f"{key}={value}"
        raise ConfigError(
            f"{shown}: {key} must be {reference}, so that train.{field} (target stage) and "
            f"pretrain.{field} (source stage) are its one source of truth; set those instead"
        )
    for key in CODE_OWNED:
        if _unresolved(cfg, f"trainer.{key}") is not _UNSET:
            raise ConfigError(
                f"trainer.{key} is set by the code from the logger and callbacks groups; "
                f"remove it (loggers: logger=[...], callbacks: +callbacks.<name>={{...}})"
            )
    every = _unresolved(cfg, "trainer.check_val_every_n_epoch")
    interval = _unresolved(cfg, "trainer.val_check_interval")
    if (
        every not in (_UNSET, None, 1)
        or interval not in (_UNSET, None, 1, 1.0)
        or _unresolved(cfg, "trainer.limit_val_batches") == 0
    ):
        raise ConfigError(
            "trainer: validation must run once at the end of every epoch "
            "(check_val_every_n_epoch=1, val_check_interval=1.0, limit_val_batches > 0): the "
            "epoch is chosen on validation accuracy"
        )
    if SELECTION_CALLBACK not in (cfg.get("callbacks") or {}):
        raise ConfigError(
            f"callbacks.{SELECTION_CALLBACK} is required: the test runs on the weights of the "
            "epoch chosen on validation"
        )
    _check_callback_values(cfg)


def _check_callback_values(cfg: DictConfig) -> None:
    """Values the shipped callbacks would refuse only when built, after a source trained."""
    mode = OmegaConf.select(cfg, f"callbacks.{SELECTION_CALLBACK}.mode")
    if mode is not None and mode not in SELECTION_MODES:
        raise choice_error(f"callbacks.{SELECTION_CALLBACK}.mode", mode, SELECTION_MODES)
    interval = OmegaConf.select(cfg, f"callbacks.{RESUME_CALLBACK}.min_interval_s")
    if interval is not None and not (
        isinstance(interval, (int, float)) and not isinstance(interval, bool) and interval >= 0
    ):
        raise ConfigError(
            f"callbacks.{RESUME_CALLBACK}.min_interval_s={interval!r}: must be a number of "
            "seconds >= 0 between resume checkpoints (0: every epoch)"
        )


def _check_budget(name: str, budget: Any, min_epochs: int = 1) -> None:
    """A stage budget's values; the source stage takes `epochs=0` (no pre-training)."""
    if not budget.lr > 0:
        raise ConfigError(f"{name}.lr must be a positive number, got {budget.lr!r}")
    if budget.weight_decay < 0:
        raise ConfigError(f"{name}.weight_decay must be >= 0, got {budget.weight_decay!r}")
    if int(budget.batch_size) < 1:
        raise ConfigError(
            f"{name}.batch_size must be a positive integer, got {budget.batch_size!r}"
        )
    if int(budget.epochs) < min_epochs:
        what = "a positive integer" if min_epochs else "an integer >= 0 (0: no pre-training)"
        raise ConfigError(f"{name}.epochs must be {what}, got {budget.epochs!r}")


def _check_untrained_source(pretrain: Any) -> None:
    """`pretrain.epochs=0` is one candidate (the initialised weights) whatever the objective
    would have trained: only the default objective names it, so no two run ids mean it."""
    from transferlab.objectives import is_supervised

    if int(pretrain.epochs) == 0 and not is_supervised(pretrain.get("objective")):
        raise ConfigError(
            "pretrain.epochs=0 trains nothing (the source checkpoint is the initialised model): "
            "use it with pretrain/objective=supervised, the default"
        )


def data_options(cfg: DictConfig) -> dict[str, Any]:
    """The `build_splits` arguments a run (or stage) config sets, besides spec and pool."""
    return {
        "image_size": int(cfg.image_size),
        "channels": int(cfg.channels),
        "split_seed": int(cfg.split_seed),
        "target_share": cfg.target_pool_share,
        "data_mode": str(cfg.data_mode),
        "stream_above_mb": float(cfg.stream_above_mb),
    }


def uses_budget_validation(cfg: DictConfig) -> bool:
    """Whether a target stage (or the run config, which is the target's) validates on examples
    held out of its labelled budget; a source stage always uses its dataset's validation set."""
    return cfg.get("stage", "target") == "target" and cfg.get("val_protocol") == "budget"


def _check_data(cfg: DictConfig, spec: Any, size: int | None, seed: int, pool: str) -> None:
    """Build (and cache) the splits of the stage's `pool` part and draw the subset, so data
    errors (a size its part cannot supply) come before training."""
    splits = build_splits(spec, pool=pool, **data_options(cfg))
    labelled = {"classes": splits.classes, "dataset": splits.description}
    if pool == "target" and is_adaptation(cfg.get("method")):
        _check_adaptation(cfg, splits)
    elif pool == "target" and uses_budget_validation(cfg):
        budget_split(splits.train.labels, size, seed, float(cfg.val_share), **labelled)
    else:
        stratified_subset(splits.train.labels, size, seed, **labelled)


def _check_adaptation(cfg: DictConfig, target: Any) -> None:
    """An adaptation method's needs: a source model and the source's data (init=source), one
    label space, and a target pool its labelled and unlabelled parts can be drawn from."""
    from hydra.utils import instantiate

    method = instantiate(cfg.method)
    pool = source_pool(cfg.source, cfg.target)
    source = build_splits(cfg.source, pool=pool, **data_options(cfg))
    check_label_spaces(method.name, source, target)
    size = int(cfg.target_size) if cfg.target_size is not None else None
    target_parts(target, size, method.unlabelled_size, int(cfg.seed), method.reads_target_pool)


def _preset_name(method: Any) -> str:
    """The name a method preset's method goes by (`Method.name`: finetune, lp_ft, dann)."""
    from hydra.utils import instantiate

    return str(instantiate(method).name)


def _check_labels_given(cfg: DictConfig) -> None:
    """An adaptation method adapts a model trained on the source (init=source, or along a
    drift chain init=previous; checked before the config is normalised, which drops the method
    of a scratch run); target_size=0 (no labelled target example) trains only with an
    adaptation method."""
    if is_adaptation(cfg.get("method")) and cfg.init not in ("source", PREVIOUS):
        raise ConfigError(
            f"method={_preset_name(cfg.method)} adapts a source model to the target with the "
            f"source's labelled data: it needs init=source (or init=previous along a drift "
            f"chain; got init={cfg.init})"
        )
    if cfg.target_size == 0 and not is_adaptation(cfg.get("method")):
        method = cfg.get("method")
        name = f"method={_preset_name(method)}" if method else f"init={cfg.init}"
        raise ConfigError(
            f"target_size=0 gives no labelled target example, which {name} needs; an unlabelled "
            f"target trains with an adaptation method (init=source method={ADAPTATION_PRESETS})"
        )


def _check_shared_base(source: Any, target: Any) -> None:
    """Views of one base dataset must split it alike, or source training could see target test."""
    source, target = normalize_spec(source), normalize_spec(target)
    if source["name"] != target["name"]:
        return
    for key in ("val_fraction", "test_fraction"):
        if source.get(key) != target.get(key):
            raise ConfigError(
                f"source and target are both views of {source['name']!r} but split it "
                f"differently ({key} {source.get(key)} vs {target.get(key)}); use the same {key}"
            )


@functools.lru_cache(maxsize=256)
def _validated_model(arguments: str) -> int:
    """`validate_model` once per distinct set of arguments (a grid repeats them many times)."""
    return validate_model(**json.loads(arguments))


@functools.lru_cache(maxsize=256)
def _checked_method(arguments: str) -> None:
    """The method's settings against the model's structure (`Method.check`), once per distinct
    set of arguments: a tuned stage the model lacks, LoRA targets it does not have, a negative
    penalty weight are one-line errors before any training."""
    from hydra.utils import instantiate

    from transferlab.methods import Context
    from transferlab.models.factory import model_structure

    args = json.loads(arguments)
    method = instantiate(args["method"])
    model = model_structure(args["model"], **args["kwargs"])
    context = Context(freeze_depth=args["freeze_depth"], epochs=args["epochs"], head_reset=True)
    method.check(model, context)


def _check_objective(node: Any) -> None:
    """The source objective's settings (`Objective.check`): one line before any training."""
    from hydra.utils import instantiate

    if node is not None:
        instantiate(node).check()


def preflight(cfg: DictConfig) -> int:
    """Check every setting of a run before any training; return the model's depth-group count.

    Raises ConfigError (one line: the bad value and the valid choices) on the first problem.
    """
    if cfg.init not in INIT_CHOICES:
        raise choice_error("init", cfg.init, INIT_CHOICES)
    if cfg.init in ("source", PREVIOUS) and cfg.get("source") is None:
        raise ConfigError(f"init={cfg.init} needs a source dataset (data@source=<preset>)")
    check_drift(cfg)
    _check_labels_given(cfg)
    cfg = normalize_run_config(cfg)
    uses_source = cfg.init in ("source", PREVIOUS)  # a chain starts from the source
    validate_spec(cfg.target)
    if uses_source:
        validate_spec(cfg.source)
        _check_shared_base(cfg.source, cfg.target)
    _check_budget("train", cfg.train)
    if uses_source:
        _check_budget("pretrain", cfg.pretrain, min_epochs=0)
        _check_objective(cfg.pretrain.get("objective"))
        _check_untrained_source(cfg.pretrain)
    groups = _validated_model(
        json.dumps(
            {
                "name": cfg.model.name,
                "freeze_depth": cfg.freeze_depth,
                # the source checkpoint does not exist yet
                "init": "scratch" if uses_source else cfg.init,
                "init_path": cfg.init_path,
                "image_size": cfg.image_size,
                **plain(cfg.model.kwargs),
            },
            sort_keys=True,
        )
    )
    if cfg.get("method"):
        _checked_method(
            json.dumps(
                {
                    "method": plain(cfg.method),
                    "model": cfg.model.name,
                    "kwargs": plain(cfg.model.kwargs),
                    "freeze_depth": cfg.freeze_depth,
                    "epochs": cfg.train.epochs,
                },
                sort_keys=True,
            )
        )
    _check_data(cfg, cfg.target, cfg.target_size, cfg.seed, pool="target")
    if uses_source:
        pool = source_pool(cfg.source, cfg.target)
        _check_data(cfg, cfg.source, cfg.source_size, cfg.seed, pool=pool)
    return groups


def check_run(cfg: DictConfig) -> None:
    """Every check a run makes before training: the schema, the structure, then each value."""
    check_run_config(cfg)
    check_structure(cfg)
    preflight(cfg)
