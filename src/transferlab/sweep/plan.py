"""Plan a sweep before any job starts: compose and check every job, find its run id, and leave
out the grid points whose run is already done or that repeat an earlier grid point's run.

Composing a job with Hydra costs tens of milliseconds, most of it building the defaults tree.
Jobs that choose the same presets (config-group overrides) share one composition here, and only
their plain `key=value` overrides are applied per job, exactly as Hydra applies them after
composing (a test compares every job with Hydra's own composition).

A re-launch should not compose at all: the run id of each grid point is kept in a plan cache
under the results root, keyed by the job's overrides and a fingerprint of everything that can
change a composed config (the config files on the search path, the environment variables they
read, the master config and the package's code). A changed file or version misses the cache, and
the jobs are composed and checked again.

Under the joblib launcher the jobs are composed and checked in its workers, in chunks of the
grid (`check_chunk`), while they are warm for the jobs: the plan then uses both cores, and the
launching process never imports torch, timm or Lightning (about 5 s of a core).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from transferlab._helpers import atomic_write_json, copy_config

log = logging.getLogger("transferlab.sweep")

#: Where plan caches live, under the results root.
PLAN_CACHE_DIR = ("cache", "plans")
#: Config files whose text enters the fingerprint.
CONFIG_SUFFIXES = (".yaml", ".yml")
ENV_READ = re.compile(r"oc\.env:\s*([A-Za-z_][A-Za-z0-9_]*)")
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
#: A plan checked in the workers sends them this many chunks of jobs per worker: contiguous
#: runs of the grid (a worker's jobs share compositions and source stages), and several per
#: worker (one that finishes early takes another).
CHUNKS_PER_WORKER = 4


def job_config(config: DictConfig) -> DictConfig:
    """A job's config as its task function receives it (without the `hydra` node)."""
    job = config.copy()
    with open_dict(job):
        job.pop("hydra", None)
    return job


class JobComposer:
    """Compose job configs as Hydra's launcher would, sharing the work of jobs that choose the
    same presets: config-group overrides select a cached composition, plain overrides are then
    applied as Hydra applies them (`ConfigLoaderImpl._apply_overrides_to_config`).

    Through `PlannedLoader` it is the launcher's config loader too: a job the plan composed is
    not composed again to run it."""

    def __init__(self, config_loader: Any, master_config: DictConfig) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.loader = config_loader
        self.master = master_config
        self.parser = OverridesParser.create(config_loader=config_loader)
        self._composed: dict[tuple[str, ...], DictConfig] = {}
        self._jobs: dict[tuple[str, ...], DictConfig] = {}  # the same, without `hydra`
        self._parsed: dict[str, Any] = {}  # Hydra's parsed override of each line
        self.source_ids: dict[str, str] = {}  # source stages' run ids (`job_entry`)

    def _is_group(self, override: Any) -> bool:
        """A preset choice; a mapping given to a group (`optimizer={lr: 1}`) is a config
        override for Hydra, applied in command-line order with the plain values."""
        if isinstance(override.value(), dict):
            return False
        return override.package is not None or self.loader.repository.group_exists(
            override.key_or_group
        )

    def _split(self, job: Sequence[str]) -> tuple[tuple[str, ...], list[Any], list[Any]]:
        """The job's preset choices (its composition's cache key), its plain value overrides
        and its task overrides (all but `hydra.*`), parsed."""
        for line in job:  # a grid has few distinct overrides: each is parsed once
            if line not in self._parsed:
                self._parsed[line] = self.parser.parse_overrides([line])[0]
        parsed = [self._parsed[line] for line in job]
        groups = tuple(o.input_line for o in parsed if self._is_group(o) or o.is_hydra_override())
        values = [o for o in parsed if o.input_line not in groups]
        return groups, values, [o for o in parsed if not o.is_hydra_override()]

    def _composition(self, groups: tuple[str, ...]) -> DictConfig:
        if groups not in self._composed:
            self._composed[groups] = self.loader.load_sweep_config(
                master_config=self.master, sweep_overrides=list(groups)
            )
        return self._composed[groups]

    def full_config(self, job: Sequence[str]) -> DictConfig:
        """The job's full config, `hydra` node included, as `ConfigLoader.load_sweep_config`
        returns it for the master config (the job's overrides recorded under
        `hydra.overrides.task`, its `override_dirname`, the master's resolver cache)."""
        from hydra._internal.config_loader_impl import get_overrides_dirname

        groups, values, task = self._split(job)
        cfg = self._with_values(self._composition(groups), values)
        naming = cfg.hydra.job.config.override_dirname
        cfg.hydra.overrides.task = [o.input_line for o in task]
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=task,
            kv_sep=naming.kv_sep,
            item_sep=naming.item_sep,
            exclude_keys=naming.exclude_keys,
        )
        return cfg

    def compose(self, job: Sequence[str]) -> DictConfig:
        """The job's config, without the `hydra` node: its values applied to a copy of its
        presets' composition without that node (half the copying of `full_config`; the plain
        values are never `hydra.*`, which choose a composition)."""
        groups, values, _ = self._split(job)
        if groups not in self._jobs:
            self._jobs[groups] = job_config(self._composition(groups))
        return self._with_values(self._jobs[groups], values)

    def _with_values(self, composition: DictConfig, values: list[Any]) -> DictConfig:
        """A copy of a composition with a job's plain values applied as Hydra applies them,
        and the master's resolver cache."""
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        cfg = copy_config(composition)
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        return cfg


class PlannedLoader:
    """Hydra's config loader for the launcher, composing jobs with the sweep plan's
    `JobComposer` (everything else is the loader's own). Pickled (a launcher that runs jobs in
    other processes), it is the plain loader again: its compositions stay in this process."""

    def __init__(self, composer: JobComposer) -> None:
        self.composer = composer

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> Any:
        if master_config is not self.composer.master:  # not the plan's sweep: Hydra's own
            return self.composer.loader.load_sweep_config(master_config, sweep_overrides)
        return self.composer.full_config(sweep_overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.composer.loader, name)

    def __reduce__(self) -> tuple:
        return (_plain_loader, (self.composer.loader,))


def _plain_loader(loader: Any) -> Any:
    return loader


def _source_files(config_loader: Any) -> Iterable[Path]:
    """The config files on Hydra's search path (file:// and pkg:// sources)."""
    from importlib import resources

    for source in config_loader.get_sources():
        if source.scheme() == "file":
            root = Path(source.path)
        elif source.scheme() == "pkg":
            package = source.path.replace("/", ".")
            try:
                root = Path(str(resources.files(package)))
            except (ModuleNotFoundError, TypeError):
                continue
        else:
            continue
        if root.is_dir():
            yield from sorted(p for p in root.rglob("*") if p.suffix in CONFIG_SUFFIXES)


def fingerprint(config_loader: Any, master_config: DictConfig) -> str:
    """A hash of everything that can change what a job's overrides compose to: the config
    files, the environment variables they read, the package's code and the master config
    (unresolved: its interpolations are text, and what they read is hashed above)."""
    digest = hashlib.sha256()
    env_names: set[str] = set()
    for path in _source_files(config_loader):
        text = path.read_bytes()
        digest.update(str(path).encode() + b"\0" + text)
        env_names.update(ENV_READ.findall(text.decode(errors="ignore")))
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        digest.update(path.read_bytes())
    for name in sorted(env_names):
        digest.update(f"{name}={os.environ.get(name)}".encode())
    master = OmegaConf.to_container(job_config(master_config), resolve=False)
    digest.update(json.dumps(master, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def job_key(job: Sequence[str]) -> str:
    """A grid point's key in the plan cache: its overrides, in order."""
    return hashlib.sha256("\0".join(job).encode()).hexdigest()[:32]


@dataclass
class SweepPlan:
    """The jobs to launch and why the others are left out."""

    jobs: int = 0
    launch: list[list[str]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)  # the plan entry of each
    done: int = 0
    duplicates: int = 0
    composed: int = 0


class PlanCache:
    """Run ids of grid points by job key, one JSON file per fingerprint."""

    def __init__(self, results_root: str | Path, key: str | None) -> None:
        self.path = Path(results_root).joinpath(*PLAN_CACHE_DIR, f"{key}.json") if key else None
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text())
            except ValueError:
                self.entries = {}
        self._changed = False

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.entries[key] = entry
        self._changed = True

    def save(self) -> None:
        if self.path is not None and self._changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, self.entries)


def job_entry(cfg: DictConfig, source_ids: dict[str, str] | None = None) -> dict[str, Any]:
    """What the plan keeps of a composed, checked job: where its record goes, its run id, and
    the fingerprints of the folders and files its id holds by content (`inputs`).
    `source_ids`: the source stages' run ids hashed so far (`known_run_id`)."""
    from transferlab.store import ResultsStore, run_id, stage_configs
    from transferlab.store.fingerprint import run_inputs
    from transferlab.sweep.cohorts import cohort_fields

    store = ResultsStore(cfg.paths.results, cfg.study)
    return {
        "records": str(store.records_dir),
        "run_id": run_id(stage_configs(cfg, source_ids)[1]),
        "force": bool(cfg.get("force")),
        "save_weights": bool(cfg.get("save_weights")),
        "inputs": run_inputs(cfg),
        **cohort_fields(cfg),
    }


def is_done(entry: dict[str, Any]) -> bool:
    """Whether the run of a plan entry has a record a re-launch keeps (completed, diverged).

    A kept entry whose folders or files changed since (an image folder with other images, an
    overwritten weights file) is not done: its run id is another one, found by composing it."""
    from transferlab.store.fingerprint import inputs_unchanged
    from transferlab.store.records import ResultsStore

    if entry["force"] or not inputs_unchanged(entry.get("inputs", {})):
        return False
    records = Path(entry["records"])
    store = ResultsStore(records.parent.parent, records.parent.name)
    return store.is_final(entry["run_id"], needs_weights=entry.get("save_weights", False))


def checked_entry(
    composer: JobComposer, job: Sequence[str], number: int, swept: set[str]
) -> dict[str, Any]:
    """Compose and check one job (the `number`th of the grid); its plan entry, or a GridError
    naming it by its swept values."""
    from hydra.errors import HydraException

    from transferlab.errors import ConfigError, GridError
    from transferlab.training.checks import check_run
    from transferlab.training.config_schema import composition_error

    try:
        cfg = composer.compose(job)
        check_run(cfg)
        return job_entry(cfg, composer.source_ids)
    except (HydraException, ValueError) as exc:  # ValueError: a ConfigError too
        if not isinstance(exc, ConfigError):
            exc = composition_error(exc, composer.master)
        point = " ".join(o for o in job if o.split("=", 1)[0] in swept)
        raise GridError(f"sweep job {number} ({point}): {exc}") from None


#: The worker's composer of the plan it checks now, by the plan's token (`check_chunk`): its
#: compositions (a few MB) stay until the worker checks another plan's jobs.
_worker_composer: dict[str, JobComposer] = {}


def check_chunk(
    token: str,
    config_loader: Any,
    master_config: DictConfig,
    singleton_state: dict[Any, Any],
    chunk: Sequence[tuple[int, Sequence[str]]],
    swept: set[str],
) -> list[tuple[int, Any]]:
    """In a worker: `checked_entry` for each (number, job) of a chunk, in order, until the
    first GridError, which is returned as the last outcome (not raised: the launching process
    reports the first bad job in grid order, whichever worker finds it first). A worker keeps
    one composer per plan (`token`), so its chunks share compositions and source ids;
    Hydra's global state is the launching process's, as the joblib launcher sets it for a job."""
    from transferlab.errors import GridError

    composer = _worker_composer.get(token)
    if composer is None:
        from hydra.core.singleton import Singleton
        from hydra.core.utils import setup_globals

        setup_globals()
        Singleton.set_state(singleton_state)
        _worker_composer.clear()  # an earlier plan's compositions are not needed again
        composer = _worker_composer[token] = JobComposer(config_loader, master_config)
    outcomes: list[tuple[int, Any]] = []
    for number, job in chunk:
        try:
            outcomes.append((number, checked_entry(composer, job, number, swept)))
        except GridError as exc:
            outcomes.append((number, exc))
            break
    return outcomes


def chunks(jobs: Sequence[Any], count: int) -> list[list[Any]]:
    """`jobs` in at most `count` contiguous chunks of nearly equal size, in order."""
    size, extra = divmod(len(jobs), max(count, 1))
    out, start = [], 0
    for i in range(min(count, len(jobs))):
        end = start + size + (i < extra)
        out.append(list(jobs[start:end]))
        start = end
    return out
