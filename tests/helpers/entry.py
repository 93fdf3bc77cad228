"""Run a console entry point as a process of its own, without paying for its imports each time.

A test that checks what one command prints and returns (bad input: one line, exit 2), or
trains a few tiny runs, spends most of a fresh interpreter's time importing torch, Lightning
and timm (about 7 s of CPU a process here, against a second or two of training). Here each call
runs the entry point's `main()` (`transferlab-run`, `transferlab-reproduce`) in a new process
forked from a server that imported the package once (multiprocessing's forkserver: the server
imports and never computes, so a fork of it is as clean as a new interpreter). The child gets
the test's environment, working folder and argument list, its stdout and stderr go to files,
and its exit status is the process's own. `start` and `run` take the command a test built
(`python -m transferlab.cli.run ARGS`) and stand in for `subprocess.Popen` and `subprocess.run`:
signals sent to the process reach the entry point's own handlers. Each test file keeps at
least one command run as a user types it (`python -m ...`; `typed=True` makes `start` and `run`
those very `Popen` and `run` calls), and the installed wheel is tested that way too.

The server's environment is the test process's when it starts (conftest.py pins W&B offline and
the Hugging Face hub offline before that): a variable a library reads when it is imported
cannot be changed per call; the ones the package reads when it runs can.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

#: What the server imports once: the entry points and what they check a run with (Lightning's
#: constructors, timm's models), the built-in data's loader and the sweeper.
PRELOAD = [
    "transferlab.cli.run",
    "transferlab.cli.reproduce",
    "transferlab.cli.analyze",
    "transferlab.training.run",
    "lightning",
    "lightning.pytorch",
    "timm",
    "sklearn.datasets",
    "hydra_plugins.transferlab_sweeper.checked_sweeper",
]
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD)


def _child(
    entry: str,
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    out: str,
    err: str,
    new_session: bool = False,
) -> None:
    if new_session:  # its own process group, as Popen(start_new_session=True)
        os.setsid()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    # PYTHONPATH's folders come first on the path, as a new interpreter puts them
    added = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[1:1] = added
    # stdout and stderr into one file share one descriptor, as Popen(stderr=STDOUT) does
    paths = {out: os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)}
    if err not in paths:
        paths[err] = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    for fd, path in ((1, out), (2, err)):
        os.dup2(paths[path], fd)
    for handle in paths.values():
        os.close(handle)
    sys.argv = argv
    module, _, function = entry.partition(":")
    main = getattr(importlib.import_module(module), function)
    status = 0
    try:
        returned = main()
        status = returned if isinstance(returned, int) else 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


#: Console entry points by command name, as pyproject.toml declares them.
ENTRIES = {
    "transferlab-run": "transferlab.cli.run:main",
    "transferlab-reproduce": "transferlab.cli.reproduce:main",
    "transferlab-analyze": "transferlab.cli.analyze:main",
}
#: The command of each entry point's module (`python -m MODULE` runs the same `main()`).
MODULES = {entry.split(":")[0]: command for command, entry in ENTRIES.items()}


class Started:
    """A forked entry point's running process, with the part of `subprocess.Popen`'s interface
    the tests use: `pid`, `poll`, `wait`, `send_signal`, `returncode` (negative: the signal
    that ended it)."""

    def __init__(self, process: multiprocessing.process.BaseProcess, argv: list[str]) -> None:
        self._process, self.args, self.pid = process, argv, process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _entry_args(cmd: list[str]) -> tuple[str, list[str]]:
    """(command, arguments) of `[python, "-m", MODULE, *ARGS]`, as the tests build it."""
    if len(cmd) < 3 or cmd[1] != "-m" or cmd[2] not in MODULES:
        raise ValueError(f"not `python -m` of an entry point's module: {cmd[:3]}")
    return MODULES[cmd[2]], list(cmd[3:])


def _spawn(
    command: str,
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    out: Path,
    err: Path,
    new_session: bool,
) -> Started:
    """`COMMAND ARGS` forked, its stdout into `out` and stderr into `err` (one file: merged)."""
    argv = [command, *args]
    process = _CONTEXT.Process(
        target=_child,
        args=(ENTRIES[command], argv, env, str(cwd), str(out), str(err), new_session),
    )
    process.start()
    return Started(process, argv)


def _completed(
    command: str, args: list[str], env: dict[str, str], cwd: Path, timeout: float, merged: bool
) -> subprocess.CompletedProcess:
    """Run `COMMAND ARGS` forked in its own process group (a timeout ends it with everything
    it started) and collect its output, as `subprocess.run` does."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder, "stdout")
        err = out if merged else Path(folder, "stderr")
        started = _spawn(command, args, env, cwd, out, err, new_session=True)
        try:
            status = started.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(started.pid, signal.SIGKILL)
            started.wait()
            raise
        read = [p.read_text() if p.exists() else "" for p in (out, err)]
    return subprocess.CompletedProcess(started.args, status, read[0], None if merged else read[1])


def run_entry(
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    command: str = "transferlab-run",
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """`COMMAND ARGS` in a process of its own (see the module docstring)."""
    return _completed(command, args, env, cwd, timeout, merged=False)


def start(
    cmd: list[str],
    log: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    new_session: bool = False,
    typed: bool = False,
) -> Started | subprocess.Popen:
    """`subprocess.Popen(cmd, stdout=log, stderr=STDOUT)` for `python -m MODULE ARGS`: the
    same `main()` with the same arguments, environment and folder, forked (module docstring),
    or (`typed`) that very `Popen`, the command as a user types it."""
    environ = dict(os.environ if env is None else env)
    if typed:
        with open(log, "w") as out:  # the child holds its own copy of the descriptor
            return subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=environ,
                start_new_session=new_session,
            )  # fmt: skip
    command, args = _entry_args(cmd)
    return _spawn(command, args, environ, cwd or Path.cwd(), log, log, new_session)


def run(
    cmd: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    merged: bool = False,
    typed: bool = False,
) -> subprocess.CompletedProcess:
    """`subprocess.run(cmd, capture_output=True, text=True)` for `python -m MODULE ARGS`,
    forked (module docstring), or (`typed`) that very `subprocess.run`; `merged`: stderr into
    stdout, as `stderr=subprocess.STDOUT`."""
    environ = dict(os.environ if env is None else env)
    if typed:
        stderr = subprocess.STDOUT if merged else subprocess.PIPE
        return subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=cwd, env=environ,
            timeout=timeout,
        )  # fmt: skip
    command, args = _entry_args(cmd)
    return _completed(command, args, environ, cwd or Path.cwd(), timeout, merged)


#: A typed command's interpreter flags for Python's import-time report on its stderr: of that
#: process alone (the workers a launcher starts do not inherit the flag, unlike the report's
#: environment variable, and would write theirs to the same stderr).
IMPORT_REPORT_FLAGS = ("-X", "importtime")
IMPORT_REPORT_LINE = "import time:"
#: What a command that trains nothing should not need to load.
HEAVY_PACKAGES = {"torch", "timm", "lightning"}


def imported_packages(stderr: str) -> set[str]:
    """The top-level packages a command run with `IMPORT_REPORT_FLAGS` imported (its report)."""
    lines = [line for line in stderr.splitlines() if line.startswith(IMPORT_REPORT_LINE)]
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines}
