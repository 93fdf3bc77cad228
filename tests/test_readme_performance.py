"""The README's performance table is rendered from the figures the benchmarks saved
(docs/performance/, by scripts/performance_table.py), never typed; a figure that misses its
target says so; and a benchmark's `--save` writes what the table reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def _script():
    return load_script("performance_table")


def test_readme_table_is_the_rendering_of_the_saved_figures():
    script = _script()
    block = script.readme_block((ROOT / "README.md").read_text())
    assert block == script.render(script.FIGURES)
    assert "not measured yet" not in block  # every CPU benchmark has saved its figures


def test_models_readme_table_is_the_rendering_of_the_saved_figures():
    """The models' README shows every preset of conf/model with its measured step times and
    parameters from `models_speed`, never a typed figure."""
    from transferlab._helpers import marked_block

    script = _script()
    text = script.MODELS_README.read_text()
    block = marked_block(text, script.MODELS_START, script.MODELS_END)
    assert block == script.models_table()
    presets = sorted(p.stem for p in script.PRESETS.glob("*.yaml"))
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == presets
    assert "n/a" not in block and "failed" not in block  # each preset measured, with params
    assert "stages.py" not in text  # the module is depth.py


def _saved(folder: Path, name: str, figures: dict, gpu: str | None = None) -> None:
    record = {
        "benchmark": name,
        "measured": "2026-01-02",
        "commit": "abc1234",
        "machine": {"cpu_cores": 2, "platform": "x86_64", "gpu": gpu, "torch": "2"},
        "figures": figures,
    }
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_rows_say_whether_each_target_is_reached(tmp_path: Path):
    script = _script()
    _saved(tmp_path, "study_speed", {
        "naive_s": 100.0, "transferlab_s": 10.0, "floor_s": 9.0, "grid_points": 64,
        "target_runs": 40, "relaunch_s": 3.0,
    })  # fmt: skip
    _saved(tmp_path, "lightning_overhead", {
        "lightning_s": 1.5, "barebones_s": 1.1, "plain_s": 1.0, "steps": 100,
        "image_size": 16, "same_accuracies": True,
    })  # fmt: skip
    table = script.render(tmp_path)
    study = next(line for line in table.splitlines() if "side by side" in line)
    assert "10.0x faster than naive" in study and "1.11x the floor" in study
    assert ">= 10x: reached" in study and "<= 1x: **not reached**" in study
    one_run = next(line for line in table.splitlines() if "one target run" in line)
    assert "1.50x" in one_run and "<= 1.1x: **not reached**" in one_run
    # quickstart, cohorts, analysis, models and the image-folder benchmark not saved
    assert table.count("not measured yet") == 5
    assert "no GPU was available" in table


def test_the_gpu_row_shows_a_gpu_measurement_only(tmp_path: Path):
    script = _script()
    rates = {f"{v}_samples_per_s": 1000 * (i + 1) for i, v in enumerate(script.GPU_VARIANTS)}
    _saved(tmp_path, "gpu_speed", {"batch": 256, "steps": 200, **rates})  # measured on a CPU
    assert "no GPU was available" in script.render(tmp_path)
    _saved(tmp_path, "gpu_speed", {"batch": 256, "steps": 200, **rates}, gpu="NVIDIA H200")
    gpu_row = next(line for line in script.render(tmp_path).splitlines() if "GPU path" in line)
    assert "NVIDIA H200: fp32 1,000, bf16 2,000, nhwc 3,000, on-device 4,000" in gpu_row


def test_a_benchmark_saves_what_the_table_reads(tmp_path: Path):
    """models_speed (the quickest benchmark) run for real, its file rendered into a row."""
    script = ROOT / "benchmarks" / "models_speed.py"
    out = subprocess.run(
        [sys.executable, str(script), "--repeats", "1", "--sizes", "16", "--save", str(tmp_path),
         "test_resnet"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    figures = json.loads((tmp_path / "models_speed.json").read_text())["figures"]
    assert "test_resnet" in out.stdout and figures["test_resnet_16px_ms"] > 0
    row = next(line for line in _script().render(tmp_path).splitlines() if "test_resnet" in line)
    assert f"{figures['test_resnet_16px_ms']:g} ms" in row


def test_the_power_table_in_the_analysis_docs_is_the_rendering_of_the_saved_figures():
    from transferlab._helpers import marked_block

    script = _script()
    block = marked_block(script.ANALYSIS_DOC.read_text(), script.POWER_START, script.POWER_END)
    assert block == script.power_table()
    assert "Not measured yet" not in block
