"""The drift study in short, for the recipes' README: from the snapshot of its analysis
(`drift.csv`, `drift_gain.csv`, `forgetting.csv`, `drift_shift.csv`), accuracy by step per
strategy with each strategy's gain over scratch, where transfer stops helping, the forgetting
and the relation of the measured shift to the gain."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.analysis.drift import SCRATCH, STRATEGIES

MARKS = {"better": " (+)", "worse": " (−)"}


def _read(folder: Path, name: str) -> pd.DataFrame:
    """A table of the snapshot; empty when it is missing or was not computed (no header)."""
    try:
        return pd.read_csv(folder / name, keep_default_na=False, na_values=[""])
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def _row(values: list[object]) -> str:
    return "| " + " | ".join(str(v) for v in values) + " |"


def _cell(acc: pd.Series, gain: pd.DataFrame, strategy: str, step: int) -> str:
    if (strategy, step) not in acc.index:
        return ""
    text = f"{acc[(strategy, step)]:.3f}"
    if strategy == SCRATCH or gain.empty:
        return text
    row = gain[gain["strategy"].eq(strategy) & gain["step"].eq(step)]
    if row.empty:
        return text
    r = row.iloc[0]
    return f"{text} ({r['gain']:+.3f}{MARKS.get(r['vs_scratch'], '')})"


def _stops(gain: pd.DataFrame) -> list[str]:
    """One line per strategy: up to which step it beats scratch significantly."""
    lines = []
    for strategy in (s for s in STRATEGIES if s != SCRATCH):
        rows = gain[gain["strategy"].eq(strategy)]
        if rows.empty:
            continue
        stop = rows["stops_helping"].iloc[0]
        if not rows["vs_scratch"].eq("better").any():
            words = "never significantly better than scratch"
        elif pd.isna(stop):
            words = "still significantly better than scratch at the last step"
        else:
            words = (
                f"significantly better than scratch at some step before {int(stop)}, never "
                f"from step {int(stop)} on"
            )
        lines.append(f"- {strategy}: {words}.")
    return lines


def drift_digest(folder: str | Path) -> str:
    """Accuracy by step per strategy (each with its paired gain over scratch), the step
    from which each strategy stops helping, forgetting, and shift against gain."""
    folder = Path(folder)
    acc, gain = _read(folder, "drift.csv"), _read(folder, "drift_gain.csv")
    forgotten, shift = _read(folder, "forgetting.csv"), _read(folder, "drift_shift.csv")
    by = acc.set_index(["strategy", "step"])["test_acc"]
    steps = sorted(acc["step"].unique())
    targets = acc.dropna(subset=["target"]).groupby("step")["target"].first()
    seeds = sorted(acc["n_seeds"].astype(int).unique())
    lines = [
        f"{len(steps)} steps, {seeds[0] if len(seeds) == 1 else f'{seeds[0]} to {seeds[-1]}'} "
        "seeds per strategy and step.",
        "",
        "_Mean test accuracy on each step's test set; in brackets the paired gain over scratch "
        "at that step, (+) and (−) where significant (q across the study's steps and "
        "strategies; intervals in `drift_gain.csv`)._",
        "",
        _row(["step", "target", *STRATEGIES]),
        "|" + "---|" * (len(STRATEGIES) + 2),
    ]
    for step in steps:
        cells = [_cell(by, gain, s, step) for s in STRATEGIES]
        lines.append(_row([step, targets.get(step, ""), *cells]))
    if len(gain):
        lines += ["", "Where transfer stops helping:", "", *_stops(gain)]
    if len(forgotten):
        lines += [
            "",
            "_Forgetting: the sequential model's accuracy on step 0's test set after each step, "
            "and its paired drop from step 0's own (95% intervals over seeds)._",
            "",
            _row(["trained at step", "accuracy on step 0", "forgotten"]),
            "|---|---|---|",
            *(
                _row(
                    [
                        int(r.step),
                        f"{r.step0_acc:.3f}",
                        f"{r.forgotten:+.3f} ({r.forgotten_low:+.3f} to {r.forgotten_high:+.3f})",
                    ]
                )
                for r in forgotten.itertuples()
            ),
        ]
    if len(shift):
        lines += [
            "",
            "_Measured shift (source to each step's target) against the gain of fine-tuning "
            "from the source, across steps: Spearman's rho with its exact permutation p (every "
            "ordering of the steps) and q across the spaces and distances._",
            "",
            _row(["space", "distance", "rho", "p", "q"]),
            "|---|---|---|---|---|",
            *(
                _row(
                    [
                        r.space,
                        r.distance,
                        f"{r.spearman:+.2f}" if pd.notna(r.spearman) else "n/a",
                        f"{r.spearman_p:.3g}" if pd.notna(r.spearman_p) else "n/a",
                        f"{r.spearman_q:.3g}" if pd.notna(r.spearman_q) else "n/a",
                    ]
                )
                for r in shift.itertuples()
            ),
        ]
    return "\n".join(lines) + "\n"
