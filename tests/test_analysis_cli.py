"""`transferlab-analyze` end to end on simulated records with built-in data and real (untrained)
source checkpoints, and the W&B analysis run in offline mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers.simulate import SimulatedStudy, simulate_records, write_records

from transferlab.cli.analyze import main

#: One worker runs this file: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("test_analysis_cli")

IMAGE_SIZE = 16
SPECS = {
    "clean": {"name": "digits"},
    "permuted": {"name": "digits", "shifts": [{"name": "label_permutation", "seed": 0}]},
    "shapes": {"name": "shapes"},
    "digits": {"name": "digits"},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transferlab.models import create_model, save_checkpoint

    root = tmp_path_factory.mktemp("results")
    spec = SimulatedStudy(
        study="cli",
        sources={"clean": 0.08, "permuted": -0.08, "shapes": 0.0},
        targets=("digits",),
        target_sizes=(20, 100),
        freeze_depths=(0, 2),
        seeds=6,
        image_size=IMAGE_SIZE,
        specs=SPECS,
        fail_rate=0.02,
    )
    records = simulate_records(spec)
    for r in records:
        if r["stage"] == "source":
            model, _ = create_model(
                "test_resnet", num_classes=10, in_chans=3, image_size=IMAGE_SIZE
            )
            save_checkpoint(
                model,
                root / r["checkpoint"],
                model_name="test_resnet",
                model_kwargs={},
                classes=tuple(str(i) for i in range(10)),
                image_size=IMAGE_SIZE,
                in_chans=3,
            )
    return write_records(records, root)


def test_cli_writes_the_report_folder(study: Path, capsys: pytest.CaptureFixture):
    assert main([str(study), "--max-examples", "40"]) == 0
    assert "report:" in capsys.readouterr().out
    out = study / "analysis"
    report = (out / "report.md").read_text()
    assert report.index("## Findings") < report.index("## Cells")
    negative = report[report.index("### Negative transfer") : report.index("### Positive transfer")]
    assert "permuted" in negative and "clean" not in negative
    assert "q = BH-adjusted" in report or "adjusted p" in report
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 3 * 2 * 2
    for col in ("gain", "ci_low", "ci_high", "p", "q", "flag", "ft_lr", "scratch_lr", "ntg"):
        assert col in cells.columns
    assert set(cells.loc[cells["source"].eq("permuted"), "flag"]) == {"negative"}
    assert set(cells.loc[cells["source"].eq("clean"), "flag"]) == {"positive"}
    shift = pd.read_csv(out / "shift.csv")
    assert set(zip(shift["space"], shift["status"])) == {("pixel", "ok"), ("feature", "ok")}
    assert len(shift) == 6 and shift[["mmd2", "proxy_a", "frechet", "otdd"]].notna().all().all()
    est = pd.read_csv(out / "estimators.csv")
    assert (
        len(est) == 3
        and est[["logme", "leep", "nce", "hscore", "knn_loo", "linear_probe"]].notna().all().all()
    )
    agreement = pd.read_csv(out / "estimator_agreement.csv")
    assert set(agreement["estimator"]) == {
        "logme",
        "leep",
        "nce",
        "hscore",
        "knn_loo",
        "linear_probe",
    }
    names = {p.name.split("_")[0] for p in (out / "figures").glob("*.png")}
    assert {"gain-heatmap", "learning-curve", "freeze-profile", "gain-vs-shift", "estimators"} <= {
        p.stem.rsplit("-cli", 1)[0] for p in (out / "figures").glob("*.png")
    }
    assert names
    tex = (out / "cells.tex").read_text()
    assert "\\begin{tabular}" in tex and "permuted" in tex and "negative" in tex
    for name in ("selection", "summary", "curves", "effective_data", "convergence", "problems"):
        assert (out / f"{name}.csv").exists()
    assert "![gain-heatmap" in report


def test_cli_no_shift_and_holm(study: Path, tmp_path: Path):
    out = tmp_path / "report"
    assert (
        main([str(study), "--out", str(out), "--no-shift", "--no-figures", "--correction", "holm"])
        == 0
    )
    assert "Not computed" in (out / "report.md").read_text()
    assert pd.read_csv(out / "shift.csv").empty
    assert "Holm" in (out / "report.md").read_text()


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such folder" in err
    assert main([str(tmp_path)]) == 2  # a folder without records
    assert "records" in capsys.readouterr().err
    proc = subprocess.run(
        [sys.executable, "-m", "transferlab.cli.analyze", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_cli_choices_mirror_the_analysis_constants():
    from transferlab.analysis import paired, pipeline, selection, settings, stats
    from transferlab.cli import analyze as cli

    assert cli.CORRECTIONS == stats.CORRECTIONS and cli.TESTS == paired.TESTS
    assert (
        cli.RULES == tuple(selection.RULES) and cli.RULES[0] == pipeline.AnalysisSettings.selection
    )
    assert cli.DEFAULT_ALPHA == settings.DEFAULT_ALPHA
    assert cli.REPORT_FOLDER == pipeline.REPORT_FOLDER


def test_cli_bad_alpha(study: Path, capsys: pytest.CaptureFixture):
    assert main([str(study), "--alpha", "1.5", "--no-shift"]) == 2
    assert "alpha" in capsys.readouterr().err


def test_wandb_analysis_run_offline(study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from helpers.wandb_files import finished, summarize, table_rows

    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "wb"
    assert main([str(study), "--out", str(out), "--no-shift", "--wandb"]) == 0
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run_file = finished(next(runs[0].glob("run-*.wandb")))
    info = summarize(run_file)
    assert info["group"] == "cli" and info["job_type"] == "analysis"
    assert "cells/_type" in info["history_keys"]
    assert any(k.startswith("figures/gain-heatmap") for k in info["history_keys"])
    tables = list((runs[0] / "files" / "media" / "table").glob("cells_*.table.json"))
    assert len(tables) == 1
    rows = table_rows(tables[0])
    cells = pd.read_csv(out / "cells.csv")
    assert len(rows) == len(cells)
    assert sorted(r["flag"] for r in rows) == sorted(cells["flag"])
    assert list((runs[0] / "files" / "media" / "images").rglob("gain-heatmap*.png"))


def test_degenerate_studies_are_reported_not_crashed(tmp_path: Path):
    from transferlab.analysis import analyze
    from transferlab.analysis.records import RecordsPathError

    # No records at all is an error, not an empty report (the CLI's exit status 2).
    (tmp_path / "empty" / "records").mkdir(parents=True)
    with pytest.raises(RecordsPathError, match="holds no record files"):
        analyze(tmp_path / "empty", shift=False)
    spec = SimulatedStudy(study="allfail", target_sizes=(20,), seeds=2, fail_rate=1.0)
    write_records(simulate_records(spec), tmp_path)
    res = analyze(tmp_path / "allfail", n_resamples=50)
    assert set(res["cells"]["flag"]) == {"no-completed-runs"}
    assert "no-completed-runs" in (tmp_path / "allfail" / "analysis" / "report.md").read_text()
    scratch = [
        r
        for r in simulate_records(SimulatedStudy(study="scratch", seeds=2))
        if r["init"] == "scratch"
    ]
    write_records(scratch, tmp_path)
    res = analyze(tmp_path / "scratch", shift=False)
    assert res["cells"].empty and len(res["curves"]) == 3
    assert len(analyze(tmp_path, shift=False)["cells"]) == 4  # results root: every study
