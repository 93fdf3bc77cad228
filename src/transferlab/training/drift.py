"""Drift over time: a chain of targets of growing shift (`drift.chain`, a list of dataset
specs), one run per step (`drift.step`; the step's target is `chain[step]`), each with its own
small labelled budget. Four strategies, as settings:

* `init=source`: fine-tuned from the source model at every step;
* `init=scratch`: trained from scratch at every step;
* `init=previous`: sequential fine-tuning from the previous step's selected weights (at step 0,
  from the source: the same run as `init=source`). The previous step's run is found by its
  identity (the same settings, one step back) and reused when finished, trained (and kept)
  when not, so a chain resumes where it stopped and no step is trained twice;
* static: step 0's model, never updated, tested on every later step through its kept weights
  (`transferlab-eval --drift`), not retrained. The same command tests every sequential step's
  weights on step 0's test set (forgetting).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from transferlab.errors import ConfigError

#: The init of sequential fine-tuning along a drift chain.
PREVIOUS = "previous"


def chain_of(cfg: DictConfig) -> list[Any] | None:
    """The run's drift chain (dataset specs, in order), or None."""
    chain = OmegaConf.select(cfg, "drift.chain")
    return None if chain is None else list(chain)


def check_drift(cfg: DictConfig) -> None:
    """A chain of at least two dataset specs and a step inside it; `init=previous` only on a
    chain (one line before any training)."""
    from transferlab.data import validate_spec

    drift = cfg.get("drift")
    if drift is None:
        if cfg.init == PREVIOUS:
            raise ConfigError(
                "init=previous fine-tunes from a drift chain's previous step: it needs a chain "
                "(drift.chain, drift.step; see experiment=drift)"
            )
        return
    chain, step = drift.get("chain"), drift.get("step")
    if not OmegaConf.is_list(chain) or len(chain) < 2:
        raise ConfigError(f"drift.chain must list at least two dataset specs, got {chain!r}")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < len(chain):
        raise ConfigError(f"drift.step={step!r} is out of range; valid: 0..{len(chain) - 1}")
    for spec in chain:
        validate_spec(spec)


def previous_step(cfg: DictConfig) -> DictConfig:
    """The run config of the step before: the same settings one step back, sequential again
    (from the source at step 0), with its selected weights kept for this step to start from."""
    out = copy.deepcopy(cfg)
    OmegaConf.set_struct(out, False)
    out.drift.step = int(cfg.drift.step) - 1
    out.init = PREVIOUS if out.drift.step > 0 else "source"
    out.save_weights, out.force = True, False
    return out


def after_previous(
    cfg: DictConfig,
    train: Callable[[DictConfig], dict[str, Any]],
    start: Callable[[dict[str, Any]], dict[str, Any]],
    without: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """A sequential step: the previous step's record (reused, or trained by `train`), then
    `start(previous)` from its kept weights; `without(previous)` when it did not complete."""
    previous = train(previous_step(cfg))
    if previous.get("status") != "completed" or not previous.get("checkpoint"):
        return without(previous)
    return start(previous)


def drift_evaluations(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Any]]:
    """(kept run, dataset spec) pairs a drift study's evaluation tests: every step-0 run from
    the source on each later step (the static strategy), every sequential step on step 0's
    test set (forgetting)."""
    pairs = []
    for record in records:
        drift = (record.get("config") or {}).get("drift")
        if not drift:
            continue
        chain, step = drift["chain"], int(drift["step"])
        if record["init"] == "source" and step == 0:
            pairs += [(record, spec) for spec in chain[1:]]
        elif record["init"] == PREVIOUS:
            pairs.append((record, chain[0]))
    return pairs
