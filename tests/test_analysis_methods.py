"""Fine-tuning methods in the analysis: a small real study (3 methods x 2 sources x 3 seeds, a
real Hydra multirun) analysed end to end with the method comparison in the report, its numbers
checked against the records the study wrote; and the comparison's verdicts on planted data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from transferlab.analysis import analyze
from transferlab.analysis.keys import ARM
from transferlab.analysis.methods import method_comparison

#: One worker runs this file: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("test_analysis_methods")

SEEDS = 3
METHODS = ("finetune", "lp_ft", "lora")
SOURCES = ("digits_label_permuted", "shapes")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("methods") / "results"
    cmd = [
        sys.executable,
        "-m",
        "transferlab.cli.run",
        "-m",
        "study=methods",
        f"paths.results={results}",
        "image_size=16",
        "target_size=40",
        "train.epochs=2",
        "train.min_steps_per_epoch=2",
        "pretrain.epochs=2",
        "source_size=300",
        "pretrain.seed=0",
        f"data@source={','.join(SOURCES)}",
        f"method={','.join(METHODS)}",
        "init=source,scratch",
        f"seed={','.join(str(s) for s in range(SEEDS))}",
        "logger=[csv]",
        "hydra/launcher=basic",
    ]
    env = {**os.environ, "TRANSFERLAB_DATA": str(results.parent / "data")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return results / "methods"


def _records(study: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((study / "records").glob("*.json"))]


def test_records_name_the_method_and_how_its_epochs_were_spent(study):
    targets = [r for r in _records(study) if r["stage"] == "target"]
    by_method: dict[str | None, list[dict]] = {}
    for record in targets:
        by_method.setdefault(record["method"], []).append(record)
    assert len(by_method[None]) == SEEDS  # scratch: one run per seed, whatever the method
    lp_ft = "lp_ft(probe_lr=0.01, probe_optimizer=adamw, probe_scheduler=cosine, probe_share=0.3)"
    assert len(by_method["finetune"]) == len(by_method[lp_ft]) == 2 * SEEDS
    for record in by_method[lp_ft]:
        probe, tune = record["phases"]
        assert (probe["phase"], probe["epochs"], tune["phase"], tune["epochs"]) == (
            "linear_probe",
            1,
            "finetune",
            1,
        )
        assert 0 < probe["trainable_parameters"] < tune["trainable_parameters"]
    lora = next(m for m in by_method if m and m.startswith("lora("))
    assert max(r["trainable_parameters"] for r in by_method[lora]) < min(
        r["trainable_parameters"] for r in by_method["finetune"]
    )


def test_each_method_is_compared_with_plain_finetuning_in_the_report(study, tmp_path):
    tables = analyze(study, tmp_path / "report", shift=False)
    assert tables["unreadable"].empty
    methods = tables["methods"]
    assert len(methods) == len(SOURCES) * (len(METHODS) - 1)
    assert set(methods["n_pairs"]) == {SEEDS}
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Method comparison" in report
    assert (tmp_path / "report" / "methods.csv").is_file()
    # d_vs_finetune is the mean per-seed difference of the records' test accuracies (one
    # learning rate here, so the selected run of an arm and seed is its only run)
    acc = {
        (r["source"]["description"], r["method"], r["seed"]): r["metrics"]["test"]["acc"]
        for r in _records(study)
        if r["stage"] == "target" and r["init"] == "source"
    }
    for row in methods.itertuples():
        diffs = [
            acc[(row.source, row.method, s)] - acc[(row.source, "finetune", s)]
            for s in range(SEEDS)
        ]
        assert row.d_vs_finetune == pytest.approx(sum(diffs) / SEEDS)
        assert row.vs_finetune in ("better", "worse", "inconclusive")


def _planted(
    gains: dict[str, list[float]], flags: dict[str, str], lows: dict[str, float] | None = None
) -> tuple:
    """Pairs and cells of one target setting: per method, its per-seed test accuracies, its
    cell's flag against scratch and the low end of that cell's interval (default: 0.01 below
    its gain)."""
    base = {"study": "s", "model": "m", "target": "t", "target_size": 20, "variant": ""}
    pairs, cells = [], []
    for method, accs in gains.items():
        arm = {**base, "source": "src", "method": method, "freeze_depth": 0, "source_variant": ""}
        pairs += [{**arm, "seed": i, "ft_test_acc": a} for i, a in enumerate(accs)]
        gain = sum(accs) / len(accs) - 0.5
        low = (lows or {}).get(method, gain - 0.01)
        cells.append(
            {**arm, "gain": gain, "flag": flags[method], "ci_low": low, "ft_edge": ""}
            | {"scratch_edge": ""}
        )
    return pd.DataFrame(pairs), pd.DataFrame(cells)


def test_a_method_that_removes_negative_transfer_is_called_out():
    reference = [0.40, 0.42, 0.41, 0.43, 0.40, 0.42, 0.41, 0.44]
    better = [a + 0.10 + 0.005 * i for i, a in enumerate(reference)]  # clearly above
    same = [a + (0.01 if i % 2 else -0.01) for i, a in enumerate(reference)]
    pairs, cells = _planted(
        {"finetune": reference, "lp_ft": better, "surgical": better, "l2sp": same, "bss": same},
        {
            "finetune": "negative",
            "lp_ft": "inconclusive",
            "surgical": "inconclusive",
            "l2sp": "negative",
            "bss": "inconclusive",
        },
        lows={"surgical": -0.06},  # not significant, but a loss of 0.06 not excluded
    )
    table = method_comparison(pairs, cells).set_index("method")
    assert list(table.reset_index()[ARM].columns) == ARM
    assert table.loc["lp_ft", "vs_finetune"] == "better"
    assert table.loc["lp_ft", "d_vs_finetune"] == pytest.approx(0.10 + 0.005 * 3.5)
    assert table.loc["lp_ft", "rescues"] == (
        "plain fine-tuning's negative transfer becomes none (interval against scratch above -0.02)"
    )
    # better than plain fine-tuning, but no evidence that the harm is gone: removes nothing
    assert table.loc["surgical", "vs_finetune"] == "better"
    assert table.loc["surgical", "rescues"] == ""
    assert not table["edge_risk"].any()
    # plain fine-tuning's lr at an edge: a better one could undo every "better"
    cells.loc[cells["method"].eq("finetune"), "ft_edge"] = "lr at the top of the grid"
    table = method_comparison(pairs, cells).set_index("method")
    assert table["edge_risk"].to_dict() == {
        "bss": False,
        "l2sp": False,
        "lp_ft": True,
        "surgical": True,
    }
    assert table.loc["l2sp", "vs_finetune"] == "inconclusive"
    assert table.loc["l2sp", "rescues"] == ""  # still negative against scratch
    # no longer flagged against scratch, but no better than plain fine-tuning: removes nothing
    assert table.loc["bss", "vs_finetune"] == "inconclusive" and table.loc["bss", "rescues"] == ""
    assert "finetune" not in table.index  # the reference is not compared with itself


def test_too_few_pairs_are_said_not_tested():
    pairs, cells = _planted(
        {"finetune": [0.4], "lora": [0.5]}, {"finetune": "single-seed", "lora": "single-seed"}
    )
    row = method_comparison(pairs, cells).iloc[0]
    assert row["vs_finetune"] == "too-few-pairs" and pd.isna(row["q"])


def test_the_gain_heatmap_gives_each_method_its_own_row():
    from transferlab.analysis.figures import _row_labels

    plain = [("finetune", 0), ("finetune", 3)]
    assert _row_labels(plain) == (["0", "3"], True)
    mixed = [("finetune", 0), ("lora(r=4)", 0), ("lora(r=8)", 0), ("lp_ft(probe_share=0.5)", 0)]
    labels, only_plain = _row_labels(mixed)
    assert not only_plain and len(set(labels)) == len(mixed)
    assert labels == ["finetune (0)", "lora(r=4)", "lora(r=8)", "lp_ft"]


def test_the_methods_digest_names_rescues_and_new_negative_transfer(tmp_path):
    from transferlab.analysis.digest import methods_digest

    reference = [0.40, 0.42, 0.41, 0.43, 0.40, 0.42, 0.41, 0.44]
    pairs, cells = _planted(
        {
            "finetune": reference,
            "lp_ft": [a + 0.10 + 0.005 * i for i, a in enumerate(reference)],
            "lora": [a - 0.10 - 0.005 * i for i, a in enumerate(reference)],
            "l2sp": [a + (0.01 if i % 2 else -0.01) for i, a in enumerate(reference)],
        },
        {"finetune": "negative", "lp_ft": "positive", "lora": "negative", "l2sp": "negative"},
    )
    method_comparison(pairs, cells).to_csv(tmp_path / "methods.csv", index=False)
    # the comparison's correction and alpha are the cells' (cells.csv): the words follow them
    cells.assign(correction="holm", alpha=0.1, confidence=0.95).to_csv(
        tmp_path / "cells.csv", index=False
    )
    text = methods_digest(tmp_path)
    assert "inconclusive (q < 0.1 after Holm across the study's comparisons)" in text
    assert "**1 better**, **1 worse**" in text
    rescued = "lp_ft on src at 20 examples: plain fine-tuning's negative transfer becomes positive"
    assert rescued in text
    assert "lora on src" not in text  # negative like plain fine-tuning: neither rescued nor new
    cells.loc[cells["method"].eq("finetune"), "flag"] = "inconclusive"
    method_comparison(pairs, cells).to_csv(tmp_path / "methods.csv", index=False)
    text = methods_digest(tmp_path)
    new = "lora on src at 20 examples: negative transfer that plain fine-tuning does not show"
    assert new in text
    assert "l2sp on src" not in text  # flagged against scratch, but no worse than plain
    assert "No method removes" in text


def test_a_method_that_causes_negative_transfer_is_in_its_own_column():
    """`causes`: the method's cell negative, plain fine-tuning's not, and the method worse than
    plain fine-tuning; a method negative like plain fine-tuning causes nothing new."""
    reference = [0.40, 0.42, 0.41, 0.43, 0.40, 0.42, 0.41, 0.44]
    worse = [a - 0.10 - 0.005 * i for i, a in enumerate(reference)]
    flags = {"finetune": "inconclusive", "lora": "negative", "surgical": "inconclusive"}
    pairs, cells = _planted({"finetune": reference, "lora": worse, "surgical": worse}, flags)
    table = method_comparison(pairs, cells).set_index("method")
    assert table.loc["lora", "causes"] == "negative transfer that plain fine-tuning does not show"
    assert table.loc["surgical", "causes"] == ""  # worse, but not negative against scratch
    assert (table["rescues"] == "").all()
    cells.loc[cells["method"].eq("finetune"), "flag"] = "negative"
    assert (method_comparison(pairs, cells)["causes"] == "").all()
