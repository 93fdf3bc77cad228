"""The notebook runs as a user runs it (a real kernel, nbclient) on a study written to disk, and
shows the analysis' selected runs: the same cells and gains as `analyze_frame`, not raw averages
over every learning rate."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from helpers.simulate import SimulatedStudy, simulate_records, write_records
from nbclient import NotebookClient

from transferlab.analysis import analyze_frame, load_records

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_results.ipynb"


def test_explore_results_notebook_shows_the_selected_runs(tmp_path: Path, monkeypatch):
    spec = SimulatedStudy(study="nb", target_sizes=(20, 100), lrs=(1e-3, 1e-2), seeds=4)
    folder = write_records(simulate_records(spec), tmp_path)
    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(folder))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute(
        env={**os.environ}
    )
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    expected = analyze_frame(load_records(folder), shift=False)
    runs = len(load_records(folder))
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"{runs} runs; {len(expected['cells'])} cells" in printed
    table = next(o for o in outputs if "text/html" in o.get("data", {}))["data"]["text/plain"]
    for gain in expected["cells"]["gain"]:
        assert f"{gain:.6f}" in table, gain  # pandas shows 6 decimals
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the learning curves drawn
