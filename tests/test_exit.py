"""Every command's process skips Python's last garbage collection at exit
(`_helpers.exit_without_collection`): the exit hooks still run, in their order, and what they
write is complete; only the collection of objects left in reference cycles is skipped. Each
case is a real interpreter that exits as a command's does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import atexit, sys
from pathlib import Path
from transferlab._helpers import atomic_write_json, exit_without_collection

out = Path(sys.argv[1])
if sys.argv[2] == "skip":
    exit_without_collection()
    exit_without_collection()  # twice: registered once
atexit.register(lambda: atomic_write_json(out / "hook.json", {"hook": "ran"}))


class Cycle:
    def __del__(self):
        (out / "collected").write_text("yes")


cycle = Cycle()
cycle.self = cycle  # only a garbage collection can free it
del cycle
import gc
gc.disable()  # no collection before the interpreter's own at exit
"""


def _exit(tmp_path: Path, mode: str) -> Path:
    out = tmp_path / mode
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), mode], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_last_collection_is_skipped_and_exit_hooks_still_run(tmp_path):
    plain, skipped = _exit(tmp_path, "plain"), _exit(tmp_path, "skip")
    # Without it the interpreter collects the cycle at exit; with it, it does not.
    assert (plain / "collected").read_text() == "yes"
    assert not (skipped / "collected").exists()
    # Hooks registered later (W&B's, loky's, a logger's) still run and write whole files.
    for out in (plain, skipped):
        assert (out / "hook.json").read_text().strip().startswith("{")
        assert "ran" in (out / "hook.json").read_text()
