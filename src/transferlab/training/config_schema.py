"""The run config's schema: every key a run reads, its type and its range.

Hydra lets `+key=value` add any key, and a key nothing reads changes nothing but the run id (a
typo such as `+freeze_dept=2` would train the default run under a new name). The config is
therefore closed: after composition every key is checked against the dataclasses below, every
value against its type and range, and every constructor preset (`_target_` nodes: optimizer,
scheduler, trainer, callbacks, loggers) against the signature of what it constructs. Each
problem is a one-line ConfigError naming the key, the bad value and the nearest valid key.

Open nodes (a dataset spec, `model.kwargs`) are checked by the code that reads them
(`validate_spec`, `validate_model`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from transferlab._helpers import first_line
from transferlab.choices import AUTO_IMAGE_SIZE, CHANNEL_CHOICES, DATA_MODES, INPUT_NORMS
from transferlab.errors import ConfigError

#: Marks a field whose value is a constructor preset (a node with `_target_`).
CONSTRUCTOR = "constructor"
#: What `channels_last` can be: auto (on a GPU, for convolutional models) or forced on or off.
CHANNELS_LAST_CHOICES = ("auto", True, False)
#: Where a target stage's validation examples come from (conf/config.yaml explains).
VAL_PROTOCOLS = ("budget", "pool")
#: Why `budget` cannot be set (it points at the budget of the stage being trained).
BUDGET_IS_A_REFERENCE = (
    "each stage points it at its own budget; set train.* (target stage) or pretrain.* "
    "(source stage) instead"
)
_ABSENT = object()
#: Nodes whose keys are open (checked by the code that reads them): new keys take a `+`.
OPEN_NODES = ("model.kwargs", "source", "target")


def _range(
    low: float | None = None,
    *,
    above: bool = False,
    below: float | None = None,
    choices: tuple = (),
    words: tuple[str, ...] = (),
) -> Any:
    """Field metadata: the smallest allowed value (exclusive when ``above``), a bound the value
    must stay under, or the choices; ``words`` are the strings a number field also takes."""
    return field(
        metadata={"low": low, "above": above, "below": below, "choices": choices, "words": words}
    )


def _constructor(*, optional: bool = False, each: bool = False) -> Any:
    """Field metadata: a constructor preset (``each``: a mapping of named presets)."""
    return field(metadata={"kind": CONSTRUCTOR, "optional": optional, "each": each})


@dataclass
class Budget:
    """The target stage's budget (`train`); the scratch baseline gets the same."""

    epochs: int = _range(1)
    batch_size: int = _range(1)
    min_steps_per_epoch: int = _range(1)
    lr: float = _range(0, above=True)
    weight_decay: float = _range(0)


@dataclass
class PretrainBudget(Budget):
    """The source stage's budget (`pretrain`). `epochs=0` trains nothing: the source checkpoint
    is the model as `seed` initialised it (a random-init candidate, with a random classifier)."""

    epochs: int = _range(0)
    seed: int | None = _range(0)
    objective: Any = _constructor()  # the pretrain/objective preset


@dataclass
class Model:
    name: str = _range()
    kwargs: dict = _range()  # open: checked by validate_model


@dataclass
class Paths:
    results: str = _range()
    data: str = _range()
    weights: str = _range()


@dataclass
class RunInfo:
    """Filled in by the code for each stage."""

    id: str | None = _range()
    name: str | None = _range()
    dir: str | None = _range()
    tags: list = _range()


@dataclass
class RunConfig:
    """Every top-level key of a run config (see `conf/config.yaml` for what each means)."""

    study: str = _range()
    init: str = _range()
    init_path: str | None = _range()
    freeze_depth: int = _range(0)
    target_size: int | None = _range(0)
    source_size: int | None = _range(1)
    seed: int = _range(0)
    split_seed: int = _range(0)
    val_protocol: str = _range(choices=VAL_PROTOCOLS)
    val_share: float = _range(0, above=True, below=1)
    target_pool_share: float = _range(0, above=True, below=1)
    image_size: int | str = _range(1, words=(AUTO_IMAGE_SIZE,))
    channels: int = _range(choices=CHANNEL_CHOICES)
    data_mode: str = _range(choices=DATA_MODES)
    stream_above_mb: float = _range(0)
    data_workers: int = _range(0)
    input_norm: str = _range(choices=INPUT_NORMS)
    threads: int | None = _range(1)
    force: bool = _range()
    cache: bool = _range()
    resume: bool = _range()
    keep_checkpoints: bool = _range()
    save_weights: bool = _range()
    feature_cache: bool = _range()
    data_on_device: bool = _range()
    channels_last: bool | str = _range(choices=CHANNELS_LAST_CHOICES)
    cohort: bool = _range()
    cohort_members: list | None = _range()  # set by the sweeper (`sweep/cohorts.py`)
    verbose: bool = _range()
    train: Budget = _range()
    pretrain: PretrainBudget = _range()
    budget: Any = _range()  # a reference to `train` (checked by check_structure)
    paths: Paths = _range()
    run: RunInfo = _range()
    source: dict | None = _range()  # open: a dataset spec, checked by validate_spec
    target: dict = _range()
    drift: dict | None = _range()  # open: {chain, step}, checked by training.drift.check_drift
    model: Model = _range()
    method: Any = _constructor(optional=True)  # null for scratch (normalize_run_config)
    optimizer: Any = _constructor()
    scheduler: Any = _constructor(optional=True)
    augment: Any = _constructor(optional=True)
    trainer: Any = _constructor()
    callbacks: Any = _constructor(each=True)
    logger: Any = _constructor(optional=True, each=True)


def unknown_key(path: str, valid: Iterable[str]) -> ConfigError:
    """The error for a key nothing reads (typically a `+key` typo), naming the nearest one."""
    parent, _, key = path.rpartition(".")
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if close:
        hint = f"did you mean {parent + '.' if parent else ''}{close[0]}?"
    elif valid:
        hint = f"valid keys{' of ' + parent if parent else ''}: {', '.join(valid)}"
    else:
        hint = f"{parent} takes no settings"
    return ConfigError(f"unknown setting {path}: no part of a run reads it; {hint}")


def schema_keys(schema: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(schema)}


def _allowed(hint: Any) -> tuple[type | None, ...]:
    """The value types a type hint admits (None for Optional)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(a if a is not type(None) else None for a in typing.get_args(hint))
    return (hint,)


def _type_ok(value: Any, kind: type | None) -> bool:
    if kind is None:
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if kind in (dict, list):
        return isinstance(value, kind)
    return True


_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def _check_value(path: str, value: Any, spec: dataclasses.Field, hint: Any) -> None:
    kinds = _allowed(hint)
    if not any(_type_ok(value, k) for k in kinds):
        wanted = " or ".join(_TYPE_NAMES.get(k, "null" if k is None else k.__name__) for k in kinds)
        quote = f" (quote it: {path}='{value}')" if str in kinds and _type_ok(value, float) else ""
        raise ConfigError(f"{path} must be {wanted}, got {value!r}{quote}")
    meta = spec.metadata
    if isinstance(value, str) and meta.get("words") and value not in meta["words"]:
        listed = ", ".join(meta["words"])
        raise ConfigError(f"{path}={value!r} is not allowed; give a number or one of: {listed}")
    if value is not None and meta.get("choices") and value not in meta["choices"]:
        listed = ", ".join(str(c) for c in meta["choices"])
        raise ConfigError(f"{path}={value!r} is not allowed; valid choices: {listed}")
    if value is None or isinstance(value, (bool, str, dict, list)):
        return
    if not math.isfinite(value):
        raise ConfigError(f"{path} must be a finite number, got {value!r}")
    low, below = meta.get("low"), meta.get("below")
    if low is not None and (value <= low if meta.get("above") else value < low):
        bound = f"> {low}" if meta.get("above") else f">= {low}"
        raise ConfigError(f"{path} must be {bound}, got {value!r}")
    if below is not None and value >= below:
        raise ConfigError(f"{path} must be < {below}, got {value!r}")


def _check_node(prefix: str, node: Any, schema: type) -> None:
    """Check a plain, resolved mapping against a dataclass: keys, types, ranges, recursively
    (constructor presets are checked by `check_constructor`)."""
    if not isinstance(node, dict):
        raise ConfigError(f"{prefix.rstrip('.')} must be a mapping of settings, got {node!r}")
    every, hints = schema_keys(schema), typing.get_type_hints(schema)
    fields = {n: f for n, f in every.items() if f.metadata.get("kind") != CONSTRUCTOR}
    for key in node:
        if key not in every:
            raise unknown_key(f"{prefix}{key}", every)
    for name, spec in fields.items():
        path = f"{prefix}{name}"
        if name not in node:
            raise ConfigError(f"{path} is missing")
        if dataclasses.is_dataclass(hints[name]):
            _check_node(f"{path}.", node[name], hints[name])
        elif hints[name] is not Any:
            _check_value(path, node[name], spec, hints[name])


@functools.cache
def constructor_parameters(target: str) -> frozenset[str] | None:
    """The keyword arguments the callable at `target` takes; None when it takes any (read
    once per process: every job of a sweep checks the same few constructors)."""
    obj = get_object(target)
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.name != "self")


def check_constructor(path: str, node: Any, *, optional: bool = False) -> None:
    """A constructor preset: a `_target_` that exists, and only arguments it takes."""
    if optional and not node:
        return
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{path} must be a preset with a _target_ (a constructor call)")
    target = node._target_
    try:
        accepted = constructor_parameters(target)
    except Exception as exc:  # noqa: BLE001 - any failure to import means: not constructible
        raise ConfigError(
            f"{path}._target_={target} cannot be imported: {first_line(exc)}"
        ) from None
    if accepted is None:
        return
    for key in node:
        if not str(key).startswith("_") and key not in accepted:
            raise unknown_key(f"{path}.{key}", accepted)


def _typed_part(cfg: DictConfig) -> dict[str, Any]:
    """The config without its constructor presets, resolved."""
    fields = schema_keys(RunConfig)
    out = {}
    for name in cfg:
        if fields[name].metadata.get("kind") == CONSTRUCTOR:
            continue
        try:
            value = cfg[name]
            out[name] = (
                OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
            )
        except OmegaConfBaseException as exc:
            raise ConfigError(f"{name} cannot be resolved: {first_line(exc)}") from None
    return out


def check_run_config(cfg: DictConfig) -> None:
    """Check the whole composed run config against `RunConfig` (without its `hydra` node)."""
    fields = schema_keys(RunConfig)
    for key in cfg:
        if key not in fields:
            raise unknown_key(str(key), fields)
    _check_node("", _typed_part(cfg), RunConfig)
    check_constructor("pretrain.objective", OmegaConf.select(cfg, "pretrain.objective"))
    for name, spec in fields.items():
        if spec.metadata.get("kind") != CONSTRUCTOR:
            continue
        value, optional = cfg.get(name), spec.metadata.get("optional", False)
        if spec.metadata.get("each"):
            if not isinstance(value, DictConfig) and not (optional and not value):
                raise ConfigError(f"{name} must be a mapping of named presets, got {value!r}")
            for key, preset in (value or {}).items():
                check_constructor(f"{name}.{key}", preset, optional=True)
        else:
            check_constructor(name, value, optional=optional)


def check_override_keys(overrides: Iterable[str], groups: Iterable[str]) -> None:
    """Refuse, before Hydra composes anything, a `key=value` whose key the schema does not know.

    Only the typed part is checked here (top-level keys and the budgets, paths, model nodes);
    keys inside presets and `+key` additions are checked after composition.
    """
    top = {*schema_keys(RunConfig), *groups}
    hints = typing.get_type_hints(RunConfig)
    for override in overrides:
        key = override.split("=", 1)[0]
        if key.startswith(("+", "~", "-", "hydra")) or "=" not in override or "@" in key:
            continue
        if "/" in key and key.split("/", 1)[0] in groups:  # a nested group: pretrain/objective
            continue
        head, _, rest = key.partition(".")
        if head not in top:
            raise unknown_key(key, top)
        if head == "budget":
            raise ConfigError(f"{key} cannot be set: {BUDGET_IS_A_REFERENCE}")
        schema = hints.get(head)
        if rest and dataclasses.is_dataclass(schema):
            leaf = rest.split(".", 1)[0]
            if leaf not in schema_keys(schema):
                raise unknown_key(key, schema_keys(schema))


def composition_error(exc: Exception, base: DictConfig | None) -> ConfigError:
    """One line for an override Hydra could not apply, naming the nearest valid key.

    `base` is a composed config to look the valid keys up in (None: none known).
    """
    text = str(exc)
    if match := re.search(r"Could not override '([^']+)'", text):
        key = match.group(1)
        parent = key.rpartition(".")[0]
        if key.startswith(OPEN_NODES) or parent.startswith(OPEN_NODES):
            return ConfigError(f"{key} cannot be set that way in this preset; use +{key}=...")
        if base is not None and OmegaConf.select(base, key, default=_ABSENT) is not _ABSENT:
            return ConfigError(f"{key} cannot be replaced by that value: {first_line(exc)}")
        node = OmegaConf.select(base, parent, default=None) if parent else base
        if isinstance(node, DictConfig) and "_target_" in node:
            valid = constructor_parameters(str(node._target_)) or set(node)
            if key.rpartition(".")[2] in valid:  # an argument the preset leaves at its default
                return ConfigError(f"{key} is not in the {parent} preset; add it with +{key}=...")
        else:
            valid = {str(k) for k in node} if isinstance(node, DictConfig) else set()
        return unknown_key(key, valid)
    if match := re.search(r"An item is already at '([^']+)'", text):
        key = match.group(1)
        return ConfigError(f"+{key} adds a setting that exists already; set it with {key}=...")
    return ConfigError(f"cannot compose the config: {text.strip().splitlines()[0]}")
