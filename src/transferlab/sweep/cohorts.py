"""Cohorts in a sweep: the plan groups the jobs to launch whose runs differ only in `seed` and
`train.lr` (with `cohort=true`, and what `training/cohort.py` can vectorise) and launches each
group as one job that trains them together (`cohort_members`: the [seed, lr] of each run); the
other jobs launch one run each, and the plan says why they train alone.

A cohort job is the first member's own overrides plus `cohort_members`; its task builds each
member's config from its own by setting `seed` and `train.lr`, which is all the members differ
in (the plan compared their composed configs), so each member has the run id the plan found.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

#: The override a cohort job carries, and what its members may differ in.
MEMBERS_KEY = "cohort_members"
MEMBER_KEYS = ("seed", "train.lr")
#: What a cohort chooses each member's epoch on (`training/cohort.py` keeps the best by it).
SELECTION = ("val/acc", "max")
#: Precisions with one loss scaler for a whole step (`training/cohort.py` refuses them too).
SCALED_PRECISIONS = ("16-mixed", "16", 16)
#: Callbacks whose work a cohort does itself (besides selection, and the resume checkpoint it
#: does without): a run with any other callback (early stopping, SWA, ...) trains alone.
COHORT_OWN_CALLBACKS = ("timer",)


def launcher_workers(config: DictConfig) -> int:
    """How many jobs the sweep's launcher runs at once: joblib's `n_jobs` (-1: every core);
    one for the others (the basic launcher runs one at a time; a Slurm job has its own GPU, on
    which a whole cohort is what it is for)."""
    import os

    n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs")
    if not isinstance(n_jobs, int):
        return 1
    return n_jobs if n_jobs > 0 else max((os.cpu_count() or 1) + 1 + n_jobs, 1)


def why_alone_config(cfg: DictConfig) -> str | None:
    """Why a composed run cannot train in a cohort, read from its config alone (the training
    code checks the built model again); None: it can."""
    from hydra.utils import instantiate

    from transferlab.adaptation import is_adaptation
    from transferlab.methods import Context, Method
    from transferlab.training.checks import RESUME_CALLBACK, SELECTION_CALLBACK

    if cfg.init == "previous":
        return "a drift chain's steps train one after another"
    node = cfg.get("method") if cfg.init != "scratch" else None
    if node is not None and is_adaptation(node):
        return f"adaptation method {node.get('_target_', '').rsplit('.', 1)[-1]}"
    method = instantiate(node) if node else Method()
    context = Context(int(cfg.freeze_depth), int(cfg.train.epochs), head_reset=None)
    if len(method.spans(context)) > 1:
        return f"method {method.name} restarts its optimiser"
    if method.needs_features or type(method).penalty is not Method.penalty:
        return f"method {method.name} adds a penalty"
    kwargs = cfg.model.get("kwargs") or {}
    for key in ("drop_rate", "drop_path_rate"):
        if kwargs.get(key):
            return f"the model draws random numbers in training ({key}={kwargs[key]})"
    precision = OmegaConf.select(cfg, "trainer.precision")
    if precision in SCALED_PRECISIONS:
        return f"precision {precision} (one loss scale for every member)"
    if (
        OmegaConf.select(cfg, "trainer.max_steps") not in (None, -1)
        or OmegaConf.select(cfg, "trainer.min_steps") is not None
    ):
        return "trainer.max_steps / min_steps (counted per optimiser step)"
    for key, unset in (("gradient_clip_val", 0), ("accumulate_grad_batches", 1)):
        value = OmegaConf.select(cfg, f"trainer.{key}")
        if value not in (None, unset):  # Lightning refuses both under manual optimisation
            return f"trainer.{key}={value} (a cohort steps its optimisers itself)"
    devices = OmegaConf.select(cfg, "trainer.devices")
    if (isinstance(devices, int) and devices > 1) or (
        OmegaConf.is_list(devices) and len(devices) > 1
    ):
        return "more than one device"
    selection = OmegaConf.select(cfg, f"callbacks.{SELECTION_CALLBACK}") or {}
    chosen = (selection.get("monitor", SELECTION[0]), selection.get("mode", SELECTION[1]))
    if chosen != SELECTION:
        return f"epochs chosen on {chosen[0]} ({chosen[1]})"
    known = (SELECTION_CALLBACK, RESUME_CALLBACK, *COHORT_OWN_CALLBACKS)
    extra = sorted(k for k, v in (cfg.get("callbacks") or {}).items() if v and k not in known)
    if extra:  # a cohort's trainer runs none of them (early stopping, SWA, ...)
        return f"callbacks {', '.join(extra)}"
    return None


def cohort_fields(cfg: DictConfig) -> dict[str, Any]:
    """What the plan keeps of a job for grouping: its cohort key (None: it runs alone), why
    it runs alone when it asked for a cohort, and its [seed, lr]."""
    fields: dict[str, Any] = {"cohort_key": None, "alone": None}
    if not cfg.get("cohort"):
        return fields
    # lr as given: 1 and 1.0 are different run ids (the identity hashes the value's type)
    fields["member"] = [int(cfg.seed), cfg.train.lr]
    if (reason := why_alone_config(cfg)) is not None:
        return {**fields, "alone": reason}
    shared = OmegaConf.to_container(cfg, resolve=False)  # a job's config: no `hydra` node
    shared.pop("hydra", None)
    shared.pop("seed", None)
    shared.pop(MEMBERS_KEY, None)
    shared.get("train", {}).pop("lr", None)
    text = json.dumps(shared, sort_keys=True, default=str)
    return {**fields, "cohort_key": hashlib.sha256(text.encode()).hexdigest()[:32]}


def group_jobs(
    jobs: Sequence[list[str]], entries: Sequence[dict[str, Any]], workers: int = 1
) -> tuple[list[list[str]], str | None]:
    """The jobs to launch, members of a cohort as one job each, in the order of each group's
    first job; and a line for the plan's summary (None when no job asked for a cohort).

    With fewer jobs than the launcher runs at once (`workers`), cohorts are split into equal
    parts until every worker has a job: two workers are not left one cohort between them."""
    groups: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        key = entry.get("cohort_key") or f"alone:{i}"
        groups.setdefault(key, []).append(i)
    parts = _split(list(groups.values()), workers)
    launch = []
    for members in parts:
        job = list(jobs[members[0]])
        if len(members) > 1:
            pairs = ",".join(f"[{s},{lr!r}]" for s, lr in (entries[i]["member"] for i in members))
            job.append(f"{MEMBERS_KEY}=[{pairs}]")
        launch.append(job)
    if not any("member" in entry for entry in entries):
        return launch, None
    cohorts = [m for m in parts if len(m) > 1]
    reasons = Counter(e["alone"] for e in entries if e.get("alone"))
    line = f"{sum(map(len, cohorts))} runs in {len(cohorts)} cohorts"
    alone = len(entries) - sum(map(len, cohorts))
    if alone:
        why = "; ".join(f"{reason} ({n})" for reason, n in reasons.items())
        line += f", {alone} alone" + (f" ({why})" if why else "")
    return launch, line


def _split(groups: list[list[int]], workers: int) -> list[list[int]]:
    """`groups` with each cohort cut into equal parts when there are fewer groups than
    workers (as few parts as fill the workers, never a part of nothing)."""
    cohorts = [g for g in groups if len(g) > 1]
    if len(groups) >= workers or not cohorts:
        return groups
    per_cohort = -(-(workers - (len(groups) - len(cohorts))) // len(cohorts))
    out = []
    for group in groups:
        k = min(per_cohort, len(group)) if len(group) > 1 else 1
        out.extend(group[j::k] for j in range(k))
    return out


def member_configs(cfg: DictConfig) -> list[DictConfig]:
    """A cohort job's member configs: its own with each member's seed and learning rate."""
    from transferlab.errors import ConfigError

    pairs = OmegaConf.to_container(cfg[MEMBERS_KEY])
    valid = isinstance(pairs, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p)
        for p in pairs
    )
    if not valid:
        raise ConfigError(
            f"{MEMBERS_KEY}={pairs!r}: must be a list of [seed, lr] pairs (the sweeper sets it)"
        )
    members = []
    for seed, lr in pairs:
        member = copy.deepcopy(cfg)
        with open_dict(member):
            member.seed = int(seed)
            member.train.lr = lr  # as the plan wrote it: the lone run's value and type
            member[MEMBERS_KEY] = None
        members.append(member)
    return members
