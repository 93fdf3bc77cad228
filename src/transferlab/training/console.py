"""A readable console: one line per finished run by default, everything else in log files.

A study of a thousand runs would otherwise print Lightning's device banner and tips, W&B's
banner and run summary, and the same deprecation warnings, for every run. By default
(`verbose=false`) each stage's Lightning and W&B output goes to `<run dir>/run.log` (W&B's own
logs stay in its run folder), the launchers' per-job lines are dropped, and the console keeps
the sweep's progress line per run; `verbose=true` shows all of it as before.

Warnings that are not the user's to fix are silenced one by one, by message and module, never
all warnings at once.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

RUN_LOG = "run.log"
#: Loggers whose per-run output belongs in the run's log file.
RUN_LOGGERS = ("lightning.pytorch", "lightning.fabric", "timm", "transferlab.training")
#: Loggers of the launchers that print one line per job as it is launched.
LAUNCHER_LOGGERS = (
    "hydra._internal.core_plugins.basic_launcher",
    "hydra_plugins.hydra_joblib_launcher._core",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
)
#: (message pattern, module pattern) of warnings about choices this project made on purpose.
KNOWN_WARNINGS = (
    # in-memory tensors: worker processes would only copy them
    (r".*does not have many workers.*", r"lightning\.pytorch\..*"),
    # a deprecation inside Lightning's own code, not in ours
    (r".*isinstance\(treespec, LeafSpec\).*", r"lightning\.pytorch\.utilities\._pytree"),
    # frozen running-stat modules are kept in eval mode on purpose (freeze_depth)
    (r".*module\(s\) in eval mode at the start of training.*", r"lightning\.pytorch\..*"),
    # few batches per epoch in small target sets: every epoch is logged anyway
    (r".*smaller than the logging interval.*", r"lightning\.pytorch\..*"),
    # a run started on a Slurm login node or by submitit's own srun: not a multi-task job
    (r".*The `srun` command is available on your system but is not used.*", r"lightning\..*"),
)
#: Parents of RUN_LOGGERS with a console handler of their own (Lightning's `lightning`; its
#: `lightning.pytorch` and `lightning.fabric` have one too when imported before logging was
#: configured).
CONSOLE_PARENTS = ("lightning",)
WANDB_SILENT = "WANDB_SILENT"
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def silence_known_warnings() -> None:
    """Ignore exactly the warnings in KNOWN_WARNINGS."""
    for message, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)


def quiet_launchers(verbose: bool) -> None:
    """Drop the launchers' line per launched job unless verbose."""
    if not verbose:
        for name in LAUNCHER_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def stage_output(run_dir: Path | Sequence[Path], verbose: bool) -> Iterator[None]:
    """Within: Lightning's and the training code's log lines also go to `<run_dir>/run.log`
    (each run's, for a cohort's runs); unless verbose they go only there, and W&B prints
    nothing (its logs are in its folder). Verbose, with a console on the root logger (Hydra's),
    the libraries' own console handlers step aside, so each line is printed once."""
    silence_known_warnings()
    dirs = [run_dir] if isinstance(run_dir, Path) else list(run_dir)
    handlers = [logging.FileHandler(d / RUN_LOG) for d in dirs]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    one_console = verbose and bool(logging.getLogger().handlers)
    saved = {}
    for name in (*RUN_LOGGERS, *CONSOLE_PARENTS):
        logger = logging.getLogger(name)
        own = list(logger.handlers)
        saved[name] = (logger.propagate, own, logger.level)
        if name in RUN_LOGGERS:
            for handler in handlers:
                logger.addHandler(handler)
            logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
            if not verbose:  # the run log only
                logger.propagate = False
                _remove(logger, own)
                continue
        if one_console:
            logger.propagate = True
            _remove(logger, [h for h in own if type(h) is logging.StreamHandler])  # no files
    silent = os.environ.get(WANDB_SILENT)
    if not verbose:
        os.environ[WANDB_SILENT] = "true"
    try:
        yield
    finally:
        _restore(saved, handlers)
        if silent is None:
            os.environ.pop(WANDB_SILENT, None)
        else:
            os.environ[WANDB_SILENT] = silent


def _remove(logger: logging.Logger, handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        logger.removeHandler(handler)


def _restore(saved: dict[str, tuple], handlers: list[logging.Handler]) -> None:
    """Loggers as `stage_output` found them (`saved`), without its file `handlers`."""
    for name, (propagate, previous, level) in saved.items():
        logger = logging.getLogger(name)
        for handler in handlers:
            logger.removeHandler(handler)
        logger.propagate, logger.level = propagate, level
        for other in previous:
            if other not in logger.handlers:
                logger.addHandler(other)
    for handler in handlers:
        handler.close()
