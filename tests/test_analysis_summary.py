"""The per-source summary compares each fine-tuned run only with the baseline of its own cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.simulate import SimulatedStudy, simulate_records

from transferlab.analysis import analyze_frame
from transferlab.analysis.records import flatten_record, records_frame


def frame(records: list[dict]) -> pd.DataFrame:
    return records_frame(flatten_record(r) for r in records)


def test_p_improve_keys_cells_on_their_variants():
    """Two optimisers (a `variant`): with SGD every run scores 0.2 higher, so pooling the
    variants would set SGD's fine-tuned runs against AdamW's baseline and the reverse."""
    records = []
    for i, optimizer in enumerate(("torch.optim.AdamW", "torch.optim.SGD")):
        spec = SimulatedStudy(
            sources={"src": 0.03},
            target_sizes=(100,),
            freeze_depths=(0,),
            lrs=(1e-3,),
            seeds=8,
            rng_seed=i,
            settings={"optimizer._target_": optimizer},
        )
        for r in simulate_records(spec):
            if optimizer.endswith("SGD") and r["stage"] == "target" and r["metrics"]:
                r["metrics"]["test"]["acc"] += 0.2
            records.append(r)
    res = analyze_frame(frame(records), n_resamples=200)
    assert len(res["cells"]) == 2 and set(res["cells"]["variant"]) == {
        "optimizer._target_=torch.optim.AdamW",
        "optimizer._target_=torch.optim.SGD",
    }
    per_cell = [
        np.mean(
            (cell["ft_test_acc"].to_numpy()[:, None] > cell["scratch_test_acc"].to_numpy()[None])
            + 0.5
            * (cell["ft_test_acc"].to_numpy()[:, None] == cell["scratch_test_acc"].to_numpy()[None])
        )
        for _, cell in res["pairs"].groupby("variant")
    ]
    (row,) = res["summary"].itertuples(index=False)
    assert row.p_improve == pytest.approx(np.mean(per_cell))


def test_estimator_agreement_counts_each_source_once_per_correlation():
    """3 sources x 2 optimisers: each correlation has 3 sources, fewer than rank correlations
    need, so no p-value (merging the variants made n = 6 and printed one)."""
    from transferlab.analysis.estimators import BASELINES, ESTIMATORS
    from transferlab.analysis.relation import estimator_agreement

    records = []
    sources = {"a": 0.05, "b": 0.0, "c": -0.05}
    for i, optimizer in enumerate(("torch.optim.AdamW", "torch.optim.SGD")):
        spec = SimulatedStudy(
            sources=sources,
            target_sizes=(100,),
            freeze_depths=(0,),
            lrs=(1e-3,),
            seeds=4,
            rng_seed=i,
            settings={"optimizer._target_": optimizer},
        )
        records += simulate_records(spec)
    curves = analyze_frame(frame(records), n_resamples=50)["curves"]
    scores = pd.DataFrame(
        [
            {"study": "sim", "model": "resnet18", "source": s, "target": "digits", "status": "ok"}
            | {name: gain for name in (*ESTIMATORS, *BASELINES)}
            for s, gain in sources.items()
        ]
    )
    joined, table = estimator_agreement(scores, curves)
    assert len(joined) == 6 and table["n"].eq(3).all()
    assert table["kendall_p"].isna().all() and table["note"].str.startswith("not testable").all()
