"""Sources pre-trained without labels compared with the supervised source of the same data:
verdicts on planted data (the recipe's real study is checked in tests/test_readme_findings.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from transferlab.analysis.keys import ARM
from transferlab.analysis.objectives import SUPERVISED, objective_comparison, split_objective
from transferlab.objectives import Denoising, Objective, Rotation, SimCLR, objective_label

DENOISING = f"digits, {objective_label(Denoising())}"


def _planted(accs: dict[str, list[float]], flags: dict[str, str]) -> tuple:
    """Pairs and cells of one target setting, one arm per source name."""
    base = {"study": "s", "model": "m", "target": "t", "target_size": 20, "variant": ""}
    pairs, cells = [], []
    for source, values in accs.items():
        arm = {**base, "source": source, "method": "", "freeze_depth": 0, "source_variant": ""}
        pairs += [{**arm, "seed": i, "ft_test_acc": a} for i, a in enumerate(values)]
        cells.append({**arm, "gain": sum(values) / len(values) - 0.5, "flag": flags[source]})
    return pd.DataFrame(pairs), pd.DataFrame(cells)


def test_every_objective_without_labels_is_told_from_its_data_in_a_source_name():
    for objective in (Denoising(), Denoising(corruption="mask"), Rotation(), SimCLR()):
        data = "digits+affine(offset=0.1, scale=0.7)"  # a description with ", " of its own
        assert split_objective(f"{data}, {objective_label(objective)}") == (
            data,
            objective_label(objective),
        )
    assert split_objective("digits+affine(offset=0.1, scale=0.7)")[1] == SUPERVISED
    unsupervised = {c.name for c in Objective.__subclasses__() if not c.uses_labels}
    assert unsupervised == {Denoising.name, Rotation.name, SimCLR.name}  # the pattern knows each


def test_each_unsupervised_source_is_paired_with_the_supervised_one_of_its_data():
    supervised = [0.60, 0.62, 0.61, 0.63, 0.60, 0.62, 0.61, 0.64]
    better = [a + 0.08 + 0.004 * i for i, a in enumerate(supervised)]
    same = [a + (0.01 if i % 2 else -0.01) for i, a in enumerate(supervised)]
    pairs, cells = _planted(
        {
            "digits": supervised,
            DENOISING: better,
            "digits, rotation": same,
            "shapes, rotation": better,  # no supervised shapes source: nothing to compare with
        },
        {"digits": "positive", DENOISING: "positive", "digits, rotation": "positive"}
        | {"shapes, rotation": "positive"},
    )
    table = objective_comparison(pairs, cells).set_index("source")
    assert list(table.reset_index()[ARM].columns) == ARM
    assert set(table.index) == {DENOISING, "digits, rotation"}
    assert table.loc[DENOISING, "vs_supervised"] == "better"
    assert table.loc[DENOISING, "d_vs_supervised"] == pytest.approx(0.08 + 0.004 * 3.5)
    assert table.loc[DENOISING, "source_data"] == "digits"
    assert table.loc["digits, rotation", "vs_supervised"] == "inconclusive"
    assert (table["n_pairs"] == len(supervised)).all()
    assert (table["supervised_vs_scratch"] == "positive").all()
    worse = pairs.assign(
        ft_test_acc=pairs["ft_test_acc"].where(
            pairs["source"].eq("digits"), pairs["ft_test_acc"] - 0.3
        )
    )
    assert (
        objective_comparison(worse, cells).set_index("source").loc[DENOISING, "vs_supervised"]
        == "worse"
    )


def test_a_study_without_unsupervised_sources_has_no_comparison():
    pairs, cells = _planted({"digits": [0.5, 0.6, 0.7]}, {"digits": "inconclusive"})
    assert objective_comparison(pairs, cells).empty
