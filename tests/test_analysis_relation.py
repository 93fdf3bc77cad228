"""Shift against gain per arm: a graded-shift study where full fine-tuning washes the source out
and a frozen arm shows the shift plainly; the report names the frozen arm, corrected across
every arm and distance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferlab.analysis.findings import CORRECTION_NAMES, _relation_lines
from transferlab.analysis.relation import FULL_FINETUNING, arm_label, shift_vs_gain
from transferlab.analysis.shift import SHIFT_MEASURES

#: Six rotations of the target's own digits as sources, each farther from the target.
ROTATIONS = (0, 15, 30, 45, 60, 75)
SIZES = (20, 100)
#: How much a frozen body loses per step of shift, and the noise of any pair gain.
FROZEN_SLOPE, NOISE = -0.03, 0.01


def _graded_study(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    cells, shift = [], []
    for k, angle in enumerate(ROTATIONS):
        source = f"digits_rot{angle}"
        for space in ("pixel", "feature"):
            distances = dict.fromkeys(SHIFT_MEASURES, k + rng.normal(0, 0.1))
            shift.append(
                {"study": "s", "model": "m", "source": source, "target": "digits"}
                | {"space": space, "status": "ok"}
                | distances
            )
        for size in SIZES:
            for depth, gain in ((0, rng.normal(0, NOISE)), (2, FROZEN_SLOPE * k)):
                cells.append(
                    {"study": "s", "model": "m", "source": source, "target": "digits"}
                    | {"target_size": size, "method": "finetune", "freeze_depth": depth}
                    | {"variant": "", "source_variant": "", "gain": gain + rng.normal(0, NOISE)}
                )
    return pd.DataFrame(cells), pd.DataFrame(shift)


def test_relation_per_arm_names_the_frozen_arm_and_corrects_across_arms():
    cells, shift = _graded_study(np.random.default_rng(0))
    table = shift_vs_gain(shift, cells, n_resamples=200)
    frozen = arm_label("finetune", 2)
    assert set(table["arm"]) == {FULL_FINETUNING, frozen}
    # one correlation per arm, space and distance, each over the six sources
    assert len(table) == 2 * 2 * len(SHIFT_MEASURES) and table["n"].eq(len(ROTATIONS)).all()
    frozen_rows = table[table["arm"].eq(frozen)]
    assert (frozen_rows["spearman"] < -0.9).all()
    # q adjusts across all 16 correlations: never below the raw p, and above it for the best
    assert (table["spearman_q"] >= table["spearman_p"] - 1e-12).all()
    assert frozen_rows["spearman_q"].min() > frozen_rows["spearman_p"].min()
    lines = _relation_lines(table, "spearman", "Spearman rho", CORRECTION_NAMES["bh"])
    print("\n".join(lines))
    assert frozen in lines[0] and "across 16 correlations" in lines[0]
    assert lines[1].startswith("- Shift against gain, full fine-tuning's clearest")
    assert FULL_FINETUNING in lines[1]
