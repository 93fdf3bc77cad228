"""A lock file left by a killed job is harmless: the lock is the kernel's, released when its
holder dies, so the next job takes it at once (docs/records.md, Lock files)."""

from __future__ import annotations

import subprocess
import sys
import time

from filelock import FileLock, Timeout

from transferlab.store.locks import process_lock

HOLD_AND_DIE = """
import os, signal, sys
from pathlib import Path
from transferlab.store.locks import process_lock
with process_lock(Path(sys.argv[1])):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_lock_left_by_a_killed_holder_is_taken_at_once(tmp_path):
    path = tmp_path / ".run.lock"
    proc = subprocess.run([sys.executable, "-c", HOLD_AND_DIE, str(path)], timeout=60)
    assert proc.returncode == -9 and path.exists()  # killed while holding: the file stays
    started = time.monotonic()
    with process_lock(path):
        assert time.monotonic() - started < 1.0


def test_a_live_holder_still_excludes_others(tmp_path):
    path = tmp_path / ".run.lock"
    with process_lock(path):
        try:
            FileLock(str(path), timeout=0.2).acquire()
        except Timeout:
            pass
        else:
            raise AssertionError("a second holder took a held lock")
