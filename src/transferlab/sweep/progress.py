"""A Hydra callback that prints one line per finished job (a study-level progress bar, `k/N`,
the run's status, id, test accuracy and seconds, elapsed time and time left) and a summary.

Jobs may run in other processes (joblib, submitit), so progress lives in a JSON-lines file in
the sweep folder: each job appends one short line (an O_APPEND write, whole under POSIX).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from transferlab._helpers import atomic_write_json

log = logging.getLogger("transferlab.sweep")

PLAN_FILE = "sweep_plan.json"
PROGRESS_FILE = "sweep_progress.jsonl"
SUMMARY_FILE = "sweep_summary.json"
#: Characters of the study-level progress bar, and of an error shown on a progress line.
BAR_WIDTH = 20
ERROR_CHARS = 80
OUTCOMES = ("completed", "skipped", "failed", "diverged", "invalid")
#: Outcomes that make a sweep end with a non-zero status (a diverged run is a result).
FAILURES = ("failed", "invalid")
#: The summary of the last sweep this process ran (read by the command line for its status).
_LAST_SUMMARY: dict[str, Any] = {}


def grid_size(config: DictConfig) -> int:
    """Number of jobs a multirun launches: the product of the sweep's value counts."""
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    # glob() over a config group (`model=glob(test_*)`) lists the group through Hydra's loader.
    hydra = GlobalHydra.instance()
    loader = hydra.config_loader() if hydra.is_initialized() else None
    parser = OverridesParser.create(config_loader=loader)
    overrides = parser.parse_overrides([*params, *config.hydra.overrides.task])
    sizes: dict[str, int] = {}
    for override in overrides:
        key = override.get_key_element()
        if override.is_discrete_sweep():
            sizes[key] = len(list(override.sweep_string_iterator()))
        else:
            sizes[key] = 1
    return math.prod(sizes.values())


def _runs(job_return: JobReturn) -> list[tuple[str, str | None, str | None, str]]:
    """(outcome, run id, error, key figures) of each run a job trained: one, or each member
    of a cohort job (`sweep/cohorts.py`)."""
    if job_return.status == JobStatus.FAILED:
        return [("failed", None, repr(job_return._return_value), "")]
    value = job_return.return_value or {}
    return [_run(run) for run in value.get("cohort") or [value]]


def _run(value: dict[str, Any]) -> tuple[str, str | None, str | None, str]:
    """(outcome, run id, error, key figures: test accuracy, seconds, error) of one record."""
    if value.get("skipped"):
        return "skipped", value.get("run_id"), None, ""
    acc = ((value.get("metrics") or {}).get("test") or {}).get("acc")
    parts = [f"test acc {acc:.3f}"] if acc is not None else []
    if value.get("wall_time_s") is not None:
        parts.append(f"in {value['wall_time_s']:.1f}s")
    shown = " ".join(parts)
    if value.get("error"):  # `;` ends the figures on the line: keep it out of them
        error = str(value["error"])[:ERROR_CHARS].replace(";", ",")
        shown = f"{shown}, {error}" if shown else error
    outcome = value.get("status", "failed")
    return outcome, value.get("run_id"), value.get("error"), f": {shown}" if shown else ""


def _bar(done: int, total: int) -> str:
    filled = round(BAR_WIDTH * done / total) if total else BAR_WIDTH
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class SweepProgress(Callback):
    """Progress line per job, summary (done, skipped, failed, diverged, wall time) per sweep."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        plan = {"jobs": grid_size(config), "started": time.time()}
        atomic_write_json(sweep_dir / PLAN_FILE, plan)
        log.info("sweep of %d jobs in %s", plan["jobs"], sweep_dir)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        plan_path = sweep_dir / PLAN_FILE
        if not plan_path.exists():  # a single run, not a sweep
            return
        for outcome, rid, error, figures in _runs(job_return):
            self._report(config, sweep_dir, outcome, rid, error, figures)

    @staticmethod
    def _report(
        config: DictConfig, sweep_dir: Path, outcome: str, rid: str | None, error: str | None,
        figures: str,
    ) -> None:  # fmt: skip
        """Append the run's progress line to the sweep's file and print it."""
        report(sweep_dir, config.hydra.job.num, outcome, rid, error, figures)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        summary = summarize_sweep(sweep_dir)
        atomic_write_json(sweep_dir / SUMMARY_FILE, summary)
        _LAST_SUMMARY.clear()
        _LAST_SUMMARY.update(summary, dir=str(sweep_dir))
        counts = ", ".join(f"{summary[k]} {k}" for k in OUTCOMES)
        log.info(
            "sweep finished: %s of %d jobs; wall time %s",
            counts,
            summary["jobs"],
            _format_seconds(summary["wall_time_s"]),
        )
        for failure in summary["failures"]:
            log.info(
                "  failed job %s (run %s): %s", failure["job"], failure["run_id"], failure["error"]
            )


def report(
    sweep_dir: Path, job: int, outcome: str, rid: str | None, error: str | None, figures: str
) -> None:
    """Append one run's progress line to the sweep's file and print it."""
    entry = {
        "outcome": outcome, "run_id": rid, "error": error, "job": job, "time": time.time(),
        "figures": figures,
    }  # fmt: skip
    line = _append(sweep_dir, entry)
    lines = (sweep_dir / PROGRESS_FILE).read_text().splitlines()
    # This run's own position: parallel jobs ending together must not both read `k = 2`.
    _show(sweep_dir, entry, lines.index(line) + 1 if line in lines else len(lines))


def _show(sweep_dir: Path, entry: dict[str, Any], done: int) -> None:
    """Print a progress line: the study's bar, the run's position and outcome, the time left."""
    plan = json.loads((sweep_dir / PLAN_FILE).read_text())
    total = plan.get("launch", plan["jobs"])
    elapsed = entry["time"] - plan["started"]
    left = elapsed / done * max(total - done, 0)
    log.info(
        "%s [%d/%d] job %s %s run %s%s; elapsed %s, about %s left",
        _bar(done, total), done, total, entry["job"], entry["outcome"], entry["run_id"],
        entry.get("figures", ""), _format_seconds(elapsed), _format_seconds(left),
    )  # fmt: skip


def echo_progress(sweep_dir: Path, shown: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """Print, in the launching process, the progress lines that jobs in other processes wrote
    to the sweep's progress file after those already `shown` (bytes, lines); a submitit job's
    console is its log file. Returns what is shown now (whole lines only)."""
    path = sweep_dir / PROGRESS_FILE
    if not path.exists():
        return shown
    size, count = shown
    with path.open("rb") as handle:
        handle.seek(size)
        new = handle.read()
    whole = new[: new.rfind(b"\n") + 1]  # a line still being written waits for the next look
    lines = whole.decode().splitlines()
    for done, line in enumerate(lines, start=count + 1):
        _show(sweep_dir, json.loads(line), done)
    return size + len(whole), count + len(lines)


def record_lost_job(sweep_dir: Path, job: int, error: str) -> None:
    """The progress line of a job that ended without telling (a Slurm job cancelled or killed
    before it returned): one failed job, its runs unknown to the sweep (shown by
    `echo_progress`)."""
    entry = {
        "outcome": "failed", "run_id": None, "error": error, "job": job, "time": time.time(),
        "figures": f": {error.split(';')[0][:ERROR_CHARS]}",
    }  # fmt: skip
    _append(sweep_dir, entry)


def _append(sweep_dir: Path, entry: dict[str, Any]) -> str:
    """Append an entry to the sweep's progress file in one O_APPEND write; the line written."""
    line = json.dumps(entry)
    fd = os.open(sweep_dir / PROGRESS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    return line


def record_plan(sweep_dir: Path, plan: Any) -> None:
    """Add the sweeper's plan to the sweep's plan file: how many jobs start, and how many grid
    points were left out (done before, or repeating another job's run; counted as skipped)."""
    path = sweep_dir / PLAN_FILE
    recorded = json.loads(path.read_text()) if path.exists() else {"started": time.time()}
    recorded.update(
        jobs=plan.jobs, launch=len(plan.launch), done=plan.done, duplicates=plan.duplicates
    )
    atomic_write_json(path, recorded)


def summarize_sweep(sweep_dir: Path) -> dict[str, Any]:
    """Counts of job outcomes in a sweep folder, its wall time and the failed jobs' errors."""
    plan = json.loads((sweep_dir / PLAN_FILE).read_text())
    progress = sweep_dir / PROGRESS_FILE
    lines = [json.loads(x) for x in progress.read_text().splitlines()] if progress.exists() else []
    counts = Counter(line["outcome"] for line in lines)
    counts["skipped"] += plan.get("done", 0) + plan.get("duplicates", 0)
    return {
        "jobs": plan["jobs"],
        **{k: counts.get(k, 0) for k in OUTCOMES},
        "wall_time_s": time.time() - plan["started"],
        "failures": [x for x in lines if x["outcome"] in FAILURES],
    }


def last_sweep_failures() -> str | None:
    """A line saying how many jobs of this process's last sweep failed; None if none did."""
    if not _LAST_SUMMARY or not _LAST_SUMMARY["failures"]:
        return None
    failed = len(_LAST_SUMMARY["failures"])
    return (
        f"{failed} of {_LAST_SUMMARY['jobs']} sweep jobs failed (listed above and in "
        f"{Path(_LAST_SUMMARY['dir']) / SUMMARY_FILE})"
    )
