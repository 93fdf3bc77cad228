"""Run identity: a run is the hash of every setting that can change its numbers (as DomainBed's
`Job` hashes all its arguments).

The identity of a stage is the whole resolved run config, flattened to dotted keys, minus:

* `NOT_IDENTITY`: settings that cannot change a number (where things are written, how they are
  shown, how the process runs);
* settings a reference stands for: a value that only points at another setting
  (`optimizer.lr: ${budget.lr}`) is covered by the setting it points at;
* settings the run cannot use (`UNUSED_BY_INIT`): the source of a scratch run, say, so grid
  points that collapse to the same run share one id and run once;
* for the source stage, the target's own settings (`TARGET_ONLY`).

Dataset specs enter with every default filled in and their location (`root`, `download`) left
out; a dataset a folder defines (`image_folder`) enters by the fingerprint of what the folder
holds, and `init=file` weights by the sha256 of the file, not by their paths
(`transferlab.store.fingerprint`). A new setting, added to a preset or with `+key=value`, is
part of the identity unless it is listed here: forgetting to list a harmless setting re-runs a
run, never mixes two.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

from transferlab._helpers import copy_config, plain
from transferlab.choices import AUTO_IMAGE_SIZE
from transferlab.store.fingerprint import content_identity, file_fingerprint
from transferlab.store.schema import IDENTITY_VERSION

RUN_ID_LENGTH = 16
#: Settings (dotted keys, `*` matches any part) that cannot change a run's numbers.
NOT_IDENTITY = (
    "study",  # results/<study>/ and the W&B group; sources are shared across studies
    "paths.*",  # where results and datasets live
    "logger.*",  # what is logged where
    "run.*",  # filled in by the code: id, name, folder, tags
    "threads",  # torch threads: same numbers, other speed
    "force",  # re-run a finished run
    "cache",  # share source checkpoints (a private source is trained alike)
    "resume",  # checkpoint every epoch to resume from
    "keep_checkpoints",  # keep Lightning checkpoints after the run
    "save_weights",  # keep the selected weights (and log them to W&B)
    "feature_cache",  # frozen layers' outputs computed once instead of every step: the same
    #                   numbers up to float rounding (as `threads`; a test compares both paths)
    "data_on_device",  # where the examples live (a GPU's memory or the host's): same numbers
    "data_mode",  # a file-backed dataset decoded whole or streamed per batch: same numbers
    "stream_above_mb",  # (a test trains both paths and compares them)
    "data_workers",  # processes decoding a streamed dataset: same batches, other speed
    "channels_last",  # memory layout of weights and batches: same numbers up to float rounding
    "verbose",  # what the console shows
    "cohort",  # train with other seeds and lrs as one vectorised model: same numbers up to
    #            float rounding (as `threads`; tests/test_cohort.py compares both paths)
    "cohort_members",  # which runs a cohort job trains (each member has its own run id)
    "source_run_id",  # a hash of the source settings, which are hashed themselves
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "callbacks.resume_checkpoint.*",  # writes last.ckpt for resuming; trains nothing
    "callbacks.timer.*",  # measures throughput
    "callbacks.*.dirpath",  # where checkpoints are written
    "*.root",  # where a dataset is stored does not change what it is
    "*.download",
)
#: Settings a target run cannot use, per init: left out of its identity (and null in its stage
#: config). A scratch run trains every layer: its freeze depth is 0 whatever the grid says.
UNUSED_BY_INIT = {
    "scratch": ("source", "source_size", "pretrain", "freeze_depth", "init_path", "method"),
    "hub": ("source", "source_size", "pretrain", "init_path"),
    "file": ("source", "source_size", "pretrain"),
    "source": ("init_path",),
    "previous": ("init_path",),
}
#: Settings of the target stage alone: left out of the source stage's identity.
TARGET_ONLY = (
    "target",
    "target_size",
    "train",
    "init",
    "init_path",
    "freeze_depth",
    "method",
    "val_protocol",
    "val_share",
    "augment",
    "drift",
)
#: Dataset nodes of the run config (their specs are normalised before hashing).
DATASET_KEYS = ("source", "target")
#: What a stage trains on, as references into the run config: the training code reads only
#: `dataset`, `train_size` and `budget`, so `train` always means the target budget and
#: `pretrain` the source budget, whichever stage runs.
STAGE_ALIASES = {
    "source": {"dataset": "${source}", "train_size": "${source_size}", "budget": "${pretrain}"},
    "target": {"dataset": "${target}", "train_size": "${target_size}", "budget": "${train}"},
}
_REFERENCE = re.compile(r"^\$\{([\w.]+)\}$")


def _copy(cfg: DictConfig) -> DictConfig:
    """An open (non-struct) deep copy; interpolations stay unresolved."""
    out = copy_config(cfg)
    OmegaConf.set_struct(out, False)
    OmegaConf.set_readonly(out, False)
    return out


def normalize_run_config(cfg: DictConfig) -> DictConfig:
    """A copy of the run config with the settings its init cannot use set to null.

    The one place of the rule "scratch means freeze depth 0": a scratch run's freeze depth
    becomes 0 rather than null, since it trains every layer; so does the freeze depth of a
    method other than fine-tuning, which says itself what trains (grid points that differ only
    in it are one run). Under `val_protocol=pool` the budget's validation share is unused; an
    adaptation method uses neither (its `selection` names the validation set).
    """
    out = _copy(cfg)
    for key in UNUSED_BY_INIT.get(str(cfg.init), ()):
        out[key] = 0 if key == "freeze_depth" else None
    if cfg.get("val_protocol") == "pool":
        out.val_share = None  # the fixed validation set: no share of the budget is held out
    if _adapts(out.get("method")):  # validates on the set its `selection` names
        out.val_protocol = out.val_share = None
    if not uses_freeze_depth(out.get("method")):
        out.freeze_depth = 0  # the method says itself what trains
    return _with_image_size(out)


def _with_image_size(out: DictConfig) -> DictConfig:
    """`image_size=auto` replaced by the model's pretrained input size: the number, not the
    word, is what the run trains at, and what its identity and record hold."""
    from transferlab.models.factory import pretrained_input_size

    if out.get("image_size") == AUTO_IMAGE_SIZE:
        out.image_size = pretrained_input_size(str(out.model.name))
    return out


def _adapts(method: Any) -> bool:
    """Whether a `method` preset is a domain adaptation method (`transferlab.adaptation`)."""
    from transferlab.adaptation import is_adaptation

    return is_adaptation(method)


def uses_freeze_depth(method: Any) -> bool:
    """Whether a `method` preset reads `freeze_depth` (fine-tuning does; no method means it)."""
    if not method or "_target_" not in method:
        return True
    from hydra.utils import get_object

    from transferlab.methods import FineTune

    try:
        return get_object(str(method._target_)) is FineTune
    except Exception:  # noqa: BLE001 - an unknown target is reported by the config checks
        return True


def stage_config(cfg: DictConfig, stage: str, source_run_id: str | None = None) -> DictConfig:
    """The run config as one stage sees it: `dataset`, `train_size` and `budget` point at that
    stage's settings (presets read `${budget.lr}`, `${budget.epochs}`).

    The source stage trains a fresh model (init scratch, nothing frozen) with `pretrain.seed`
    when that is set; the target stage is normalised by its init (`normalize_run_config`).
    `pool` names the part of its dataset's training pool the stage draws from: a target always
    its part, a source the other part when it is a view of the target's base dataset (see
    `transferlab.data.build`), so no source trains on an example a target can draw.
    """
    out = normalize_run_config(cfg) if stage == "target" else _with_image_size(_copy(cfg))
    out.stage = stage
    for key, reference in STAGE_ALIASES[stage].items():
        out[key] = reference
    out.pool = "target"
    if stage == "source":
        from transferlab.data import source_pool  # cheap: no data is loaded

        out.pool = source_pool(cfg.source, cfg.target)
        if out.pool == "all":  # a source of another base dataset: the share is unused
            out.target_pool_share = None
        out.init, out.init_path, out.freeze_depth, out.method = "scratch", None, 0, None
        out.target = out.target_size = out.train = None  # one source serves every target
        if cfg.pretrain.get("seed") is not None:
            out.seed = cfg.pretrain.seed
    out.source_run_id = source_run_id
    return out


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def _references(cfg: DictConfig) -> dict[str, str]:
    """Dotted keys whose value is a plain reference to another setting, with that setting
    (followed through aliases: `${budget.lr}` with `budget: ${train}` gives `train.lr`)."""
    unresolved: dict[str, Any] = {}
    _flatten(OmegaConf.to_container(cfg, resolve=False), "", unresolved)
    direct = {
        key: match.group(1)
        for key, value in unresolved.items()
        if isinstance(value, str) and (match := _REFERENCE.match(value))
    }

    def follow(target: str) -> str:
        for _ in range(len(direct) + 1):  # bounded: a cycle cannot resolve anyway
            parts = target.split(".")
            prefixes = (".".join(parts[:i]) for i in range(len(parts), 0, -1))
            prefix = next((p for p in prefixes if p in direct), None)
            if prefix is None:
                return target
            target = direct[prefix] + target[len(prefix) :]
        return target

    return {key: follow(target) for key, target in direct.items()}


def _dataset_identity(spec: Any) -> Any:
    if spec is None:
        return None
    from transferlab.data import normalize_spec  # cheap: no data is loaded

    return content_identity(normalize_spec(plain(spec)))


@cache  # a sweep's configs share their keys
def _denied(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, p) or key == p.removesuffix(".*") for p in NOT_IDENTITY)


def stage_identity(stage_cfg: DictConfig) -> dict[str, Any]:
    """Every setting that can change the numbers of a stage (a `stage_config`), as flat dotted
    keys, with the identity rule's version.

    A target stage with init=source includes the source stage's settings (`source.*`,
    `source_size`, `pretrain.*`): they change its numbers through the source weights. A source
    stage leaves out the target's settings (one source serves every target).
    """
    stage = str(stage_cfg.stage)
    drop = (*TARGET_ONLY, "pretrain.seed") if stage == "source" else UNUSED_BY_INIT[stage_cfg.init]
    drop = (*drop, *STAGE_ALIASES[stage])  # references to settings hashed under their own names
    resolved = OmegaConf.to_container(stage_cfg, resolve=True)
    assert isinstance(resolved, dict)
    for key in DATASET_KEYS:
        if key in resolved:
            resolved[key] = _dataset_identity(resolved[key])
    from transferlab.objectives import is_supervised  # imports torch: only when hashing

    if resolved.get("drift", False) is None:  # no chain, left out: earlier run ids stay
        resolved.pop("drift")
    pretrain = resolved.get("pretrain")
    if isinstance(pretrain, dict) and is_supervised(pretrain.get("objective")):
        # the default, left out: records made before objectives existed keep their ids
        pretrain.pop("objective", None)
    if resolved.get("init") == "file":  # the weights by their content, not their path
        resolved["init_weights"] = file_fingerprint(resolved.pop("init_path", None))
    flat: dict[str, Any] = {}
    _flatten(resolved, "", flat)
    flat = {
        key: value
        for key, value in flat.items()
        if not _denied(key) and not any(key == d or key.startswith(f"{d}.") for d in drop)
    }
    # a reference is covered by the setting it points at, when that setting is hashed
    covered = {key for key, target in _references(stage_cfg).items() if target in flat}
    ident = {key: flat[key] for key in sorted(flat) if key not in covered}
    return {**ident, "identity_version": IDENTITY_VERSION}


def run_id(stage_cfg: DictConfig) -> str:
    """Stable id of a stage: see `stage_identity` and `identity_hash`."""
    return identity_hash(stage_identity(stage_cfg))


def identity_hash(ident: Mapping[str, Any]) -> str:
    """The run id: the leading hex digits of sha256 over the canonical JSON of an identity."""
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:RUN_ID_LENGTH]


def with_effective_init(cfg: DictConfig) -> DictConfig:
    """`init=previous` at a drift chain's first step means `init=source` (the chain starts from
    the source model): one run, whichever the grid calls it."""
    if cfg.get("init") != "previous" or OmegaConf.select(cfg, "drift.step") not in (0, None):
        return cfg
    if OmegaConf.select(cfg, "drift.chain") is None:
        return cfg  # no chain: refused by the checks (training.drift.check_drift)
    out = _copy(cfg)
    out.init = "source"
    return out


def known_run_id(stage_cfg: DictConfig, known: dict[str, str]) -> str:
    """`run_id`, read from `known` when a stage config of the same unresolved settings and
    resolver cache was hashed in this process before (what it resolves to is then the same):
    the many jobs of a sweep share a few source stages."""
    key = json.dumps(
        [OmegaConf.to_container(stage_cfg, resolve=False), repr(OmegaConf.get_cache(stage_cfg))],
        sort_keys=True,
        default=repr,
    )
    if key not in known:
        known[key] = run_id(stage_cfg)
    return known[key]


def stage_configs(
    cfg: DictConfig, known: dict[str, str] | None = None
) -> tuple[DictConfig | None, DictConfig]:
    """The stage configs of a run: its source stage (None unless `init=source`) and its target
    stage, which knows its source stage's run id (from `known`, see `known_run_id`, if given)."""
    cfg = with_effective_init(cfg)
    source_cfg = stage_config(cfg, "source") if cfg.init == "source" else None
    source_id = None
    if source_cfg is not None:
        source_id = run_id(source_cfg) if known is None else known_run_id(source_cfg, known)
    return source_cfg, stage_config(cfg, "target", source_id)
