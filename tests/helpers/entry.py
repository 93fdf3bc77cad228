"""Run a console entry point as a process of its own, without paying for its imports each time.

A test that checks what one command prints and returns (bad input: one line, exit 2) spends
almost all of a fresh interpreter's time importing torch, Lightning and timm. Here each call
runs the entry point's `main()` (`transferlab-run`, `transferlab-reproduce`) in a new process
forked from a server that imported the package once (multiprocessing's forkserver: the server
imports and never computes, so a fork of it is as clean as a new interpreter). The child gets
the test's environment, working folder and argument list, its stdout and stderr go to files,
and its exit status is the process's own. Each test file keeps at least one command run as a
user types it (`python -m ...`), and the installed wheel is tested that way too.

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
#: constructors, timm's models).
PRELOAD = [
    "transferlab.cli.run",
    "transferlab.cli.reproduce",
    "transferlab.training.run",
    "lightning",
    "lightning.pytorch",
    "timm",
]
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD)


def _child(entry: str, argv: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
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
}


def run_entry(
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    command: str = "transferlab-run",
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """`COMMAND ARGS` in a process of its own (see the module docstring)."""
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        argv = [command, *args]
        process = _CONTEXT.Process(
            target=_child, args=(ENTRIES[command], argv, env, str(cwd), str(out), str(err))
        )
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.join()
            raise subprocess.TimeoutExpired(argv, timeout)
        read = [p.read_text() if p.exists() else "" for p in (out, err)]
    return subprocess.CompletedProcess(argv, process.exitcode, *read)
