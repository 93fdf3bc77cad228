"""`transferlab-run`: the Hydra app. One run by default; a study with `-m`.

The default configs are the repository's `conf/` (installed as `transferlab.conf`); a
researcher's own presets and study recipes live in their own folder, added with Hydra's
`--config-dir DIR` (or `hydra.searchpath=[file://DIR]`).
"""

from __future__ import annotations

import logging
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from transferlab import presets
from transferlab._helpers import exit_without_collection
from transferlab.cli.signals import Interrupted, stop_on_signals
from transferlab.errors import ConfigError, GridError
from transferlab.store import check_writable
from transferlab.sweep.cohorts import MEMBERS_KEY, member_configs
from transferlab.sweep.progress import last_sweep_failures
from transferlab.training.config_schema import check_override_keys, composition_error
from transferlab.training.interrupt import note_sigterm_in_job

log = logging.getLogger("transferlab")

PROG = "transferlab-run"

#: The configs shipped with the package.
CONF_DIR = presets.CONF_DIR
UID_LENGTH = 6
CONFIG_NAME = "config"
HYDRA_VERSION_BASE = "1.3"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
_CONFIG_DIR_FLAGS = ("--config-dir", "-cd")
_MULTIRUN_FLAGS = ("-m", "--multirun")
_FILE_SCHEME = "file://"
_RESULTS_KEY = "paths.results"

# Unique suffix for output folders: jobs started in the same second never share one.
OmegaConf.register_new_resolver(
    "tl.uid", lambda: uuid.uuid4().hex[:UID_LENGTH], replace=True, use_cache=True
)


# The target of a drift chain's step: `target: ${tl.step:${drift.chain},${drift.step}}`.
OmegaConf.register_new_resolver("tl.step", lambda chain, step: chain[int(step)], replace=True)


def _config_dir_flags(args: list[str]) -> list[Path]:
    """The folders given with `--config-dir DIR` (`-cd`, `--config-dir=DIR`)."""
    return [
        Path(value or (args[i + 1] if i + 1 < len(args) else ""))
        for i, (flag, _, value) in enumerate(a.partition("=") for a in args)
        if flag in _CONFIG_DIR_FLAGS
    ]


def config_dirs(args: list[str]) -> list[Path]:
    """The package's config folder and the user's (`--config-dir`, `hydra.searchpath`)."""
    searched = [e for e in presets.searchpath_entries(args) if e.startswith(_FILE_SCHEME)]
    return [CONF_DIR, *_config_dir_flags(args), *(Path(e[len(_FILE_SCHEME) :]) for e in searched)]


def _group_options(group: str, dirs: list[Path]) -> list[str]:
    return sorted(
        {p.stem for d in dirs if (d / group).is_dir() for p in (d / group).glob("*.yaml")}
    )


def _preset_overrides(args: list[str]) -> Iterator[tuple[str, str]]:
    """(key, value) of every `group=value` argument on the command line."""
    for arg in args:
        if "=" not in arg or arg.startswith(("-", "hydra.", "hydra/")):
            continue
        key, value = arg.split("=", 1)
        yield key.lstrip("+~"), value


def check_group_overrides(args: list[str]) -> None:
    """Reject an unknown preset (`model=foo`, `data@source=bar`, `logger=[x]`) in one line.

    Hydra's own message spans many lines; this check also covers every value of a sweep
    (`model=a,b`) before the first job starts.
    """
    dirs = config_dirs(args)
    for key, value in _preset_overrides(args):
        options = _group_options(key.split("@", 1)[0], dirs)
        if not options or "(" in value:  # not a config group, or a sweep function
            continue
        if value == "null":
            raise ConfigError(
                f"{key}=null: a preset group takes a preset name ({', '.join(options)}); "
                f"to drop the group, use ~{key}"
            )
        for name in value.strip("[]").split(","):
            name = name.strip()
            if name and name != "null" and name not in options:
                listed = ", ".join(options)
                raise ConfigError(f"unknown {key} preset {name!r}; valid choices: {listed}")


def _is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def _is_lightning_sigterm(exc: SystemExit) -> bool:
    """Lightning leaves its fit loop on SIGTERM with a `SystemExit` of status 0."""
    exceptions = sys.modules.get("lightning.pytorch.utilities.exceptions")
    return exceptions is not None and isinstance(exc, exceptions.SIGTERMException)


@hydra.main(
    config_path="pkg://transferlab.conf", config_name=CONFIG_NAME, version_base=HYDRA_VERSION_BASE
)
def hydra_main(cfg: DictConfig) -> Any:
    """Run one grid point. Bad input: one line and exit 2 (in a sweep: logged, sweep goes on)."""
    note_sigterm_in_job()  # in a Slurm job, SIGTERM says the job is ending
    exit_without_collection()  # a sweep's worker processes too
    try:
        # Training loads torch, timm and Lightning: imported when a run starts, so that the
        # process that checks a command line or launches a sweep loads them only when its
        # plan checks a job (an unknown preset, or a finished study launched again, never).
        from transferlab.training.cohort_run import train_cohort
        from transferlab.training.run import train

        if cfg.get(MEMBERS_KEY):  # a cohort job of a sweep: one record per member
            return {"cohort": train_cohort(member_configs(cfg))}
        record = train(cfg)
    except ConfigError as exc:
        if _is_multirun():
            log.error("invalid grid point: %s", exc)
            return {"status": "invalid", "error": str(exc)}
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except SystemExit as exc:
        if _is_lightning_sigterm(exc):  # a job process without our handler (joblib, submitit)
            raise Interrupted(signal.SIGTERM) from None
        raise
    except Exception as exc:
        if not _is_multirun():
            raise
        # One crashed job must not end the sweep: report it and go on.
        log.exception("job crashed")
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    if not _is_multirun():  # in a sweep, the progress line says it
        status = "skipped" if record.get("skipped") else record["status"]
        test_acc = (record.get("metrics") or {}).get("test", {}).get("acc")
        log.info("run %s %s; test acc %s", record["run_id"], status, test_acc)
    if record["status"] == "failed" and not _is_multirun():
        sys.exit(EXIT_FAILED)
    return record


def _check_command_line(args: list[str]) -> None:
    """Unknown presets and unknown keys, before Hydra composes anything (one line each)."""
    check_group_overrides(args)
    dirs = config_dirs(args)
    groups = {p.name for d in dirs if d.is_dir() for p in d.iterdir() if p.is_dir()}
    check_override_keys(args, groups)
    results = [a.split("=", 1)[1] for a in args if a.lstrip("+").startswith(_RESULTS_KEY + "=")]
    if results and "${" not in results[-1] and "," not in results[-1]:
        check_writable(Path(results[-1]), _RESULTS_KEY)  # Hydra writes its logs there first


def _first_grid_point(overrides: list[str]) -> list[str] | None:
    """The overrides of a sweep's first job (each swept value's first choice); None when the
    sweep cannot be read here (its jobs are then composed one by one by `CheckedSweeper`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        return [
            f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"
            if o.is_sweep_override()
            else o.input_line
            for o in parsed
        ]
    except Exception:  # noqa: BLE001 - e.g. glob() over a config group: left to the sweeper
        return None


def _compose_check(args: list[str]) -> None:
    """Compose the run's config as Hydra will (a sweep's first job, with the `hydra` node), so
    an override Hydra cannot apply (`trainer.foo=1`, `+seed=3`) is one line naming the nearest
    key, not Hydra's report. Every job of a sweep is then composed and checked by
    `CheckedSweeper`; other Hydra flags (`--cfg`, `--info`, ...) are left to Hydra."""
    after_dir = {i + 1 for i, a in enumerate(args) if a in _CONFIG_DIR_FLAGS}
    known = (*_CONFIG_DIR_FLAGS, *_MULTIRUN_FLAGS)
    flags = [a for a in args if a.startswith("-") and a.split("=", 1)[0] not in known]
    if flags:
        return
    multirun = any(a in _MULTIRUN_FLAGS for a in args)
    # The user's search path (file://, pkg://), then each --config-dir.
    folders = [f"{_FILE_SCHEME}{folder.resolve()}" for folder in _config_dir_flags(args)]
    extra = presets.searchpath_override([*presets.searchpath_entries(args), *folders])
    overrides = [
        a
        for i, a in enumerate(args)
        if i not in after_dir and not a.startswith(("-", "hydra.")) and ("=" in a or a[:1] == "~")
    ]
    if multirun and (overrides := _first_grid_point(overrides)) is None:
        return
    chosen = [a for a in overrides if "=" in a and "." not in a.split("=", 1)[0]]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=HYDRA_VERSION_BASE):
        try:
            compose(
                config_name=CONFIG_NAME,
                overrides=[*extra, *overrides],
                return_hydra_config=multirun,
            )
        except (HydraException, ValueError) as exc:
            raise composition_error(exc, _base(extra, chosen)) from None


def _base(extra: list[str], chosen: list[str]) -> DictConfig | None:
    """The config with the command line's preset choices only, to look valid keys up in."""
    for overrides in ([*extra, *chosen], extra):
        try:
            return compose(config_name=CONFIG_NAME, overrides=overrides)
        except (HydraException, ValueError):
            continue
    return None


def main() -> None:
    """Console entry: check the command line, run under Hydra, and exit with a status a batch
    script can trust: 2 for bad input (in any job of a grid), 1 when a run or a sweep job
    failed (diverged runs are results, not failures), 128 + n when stopped by signal n."""
    stop_on_signals()
    exit_without_collection()
    try:
        _check_command_line(sys.argv[1:])
        _compose_check(sys.argv[1:])
        hydra_main()
    except (ConfigError, GridError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Interrupted as exc:
        print(
            f"{PROG}: stopped by {exc}; launch the same command again to resume",
            file=sys.stderr,
        )
        sys.exit(exc.exit_status)
    failures = last_sweep_failures()
    if failures:
        print(f"{PROG}: {failures}", file=sys.stderr)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
