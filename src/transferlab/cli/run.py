"""`transferlab-run`: the Hydra app. One run by default; a study with `-m`."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from transferlab.errors import ConfigError

log = logging.getLogger("transferlab")

CONF_DIR = Path(os.environ.get("TRANSFERLAB_CONF", Path(__file__).resolve().parents[3] / "conf"))
UID_LENGTH = 6
EXIT_BAD_INPUT = 2

# Unique suffix for output folders: jobs started in the same second never share one.
OmegaConf.register_new_resolver(
    "tl.uid", lambda: uuid.uuid4().hex[:UID_LENGTH], replace=True, use_cache=True
)


def _group_options(group: str) -> list[str]:
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def check_group_overrides(args: list[str]) -> None:
    """Reject an unknown preset (`model=foo`, `data@source=bar`, `logger=[x]`) in one line.

    Hydra's own message spans many lines; this check also covers every value of a sweep
    (`model=a,b`) before the first job starts.
    """
    for arg in args:
        if "=" not in arg or arg.startswith(("-", "hydra.", "hydra/")):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        group = key.split("@", 1)[0]
        options = _group_options(group)
        if not options or "(" in value:  # not a config group, or a sweep function
            continue
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


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> Any:
    """Run one grid point. Bad input: one line and exit 2 (in a sweep: logged, sweep goes on)."""
    from transferlab.training import train

    try:
        record = train(cfg)
    except ConfigError as exc:
        if _is_multirun():
            log.error("invalid grid point: %s", exc)
            return {"status": "invalid", "error": str(exc)}
        print(f"transferlab-run: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:
        if not _is_multirun():
            raise
        # One crashed job must not end the sweep: report it and go on.
        log.exception("job crashed")
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    status = "skipped" if record.get("skipped") else record["status"]
    test_acc = (record.get("metrics") or {}).get("test", {}).get("acc")
    log.info("run %s %s; test acc %s", record["run_id"], status, test_acc)
    if record["status"] == "failed" and not _is_multirun():
        sys.exit(1)
    return record


def main() -> None:
    """Console entry: check presets named on the command line, then hand over to Hydra."""
    try:
        check_group_overrides(sys.argv[1:])
    except ConfigError as exc:
        print(f"transferlab-run: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    hydra_main()


if __name__ == "__main__":
    main()
