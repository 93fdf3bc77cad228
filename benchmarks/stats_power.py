"""Power and false-flag rate of each paired test on simulated studies, and the cost of ties.

    python benchmarks/stats_power.py [--studies 200] [--seeds 10] [--effect 3]

Each simulated study has 36 cells (tests/helpers/simulate.py: `lone_effect_study`), 10 seeds,
accuracies on 300 test examples (so runs tie), and one cell with a planted gain of `effect`
paired-difference SDs. Power: the share of studies whose planted cell is flagged; false flags:
the share of null cells flagged. Null studies (no effect in any cell): the share of cells
flagged and of studies with any flag. Then 200 cells with tied differences are tested with scipy's
own Wilcoxon method choice and with ours, side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from transferlab.analysis.cells import build_cells
from transferlab.analysis.paired import TESTS, ZERO_METHOD, paired_tests
from transferlab.analysis.records import flatten_record, records_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.simulate import lone_effect_study, simulate_records  # noqa: E402
from saved import add_save_flag, save  # noqa: E402 - benchmarks/ is on sys.path

#: Cells and pairs of the ties timing.
TIE_CELLS, TIE_PAIRS = 200, 10


def _frames(studies: int, seeds: int, effect: float) -> list:
    frames = []
    for rng_seed in range(studies):
        spec = lone_effect_study(effect, seeds=seeds, rng_seed=rng_seed)
        frames.append(records_frame(flatten_record(r) for r in simulate_records(spec)))
    return frames


def _is_lone(cells):
    return cells["source"].eq("near") & cells["target_size"].eq(20) & cells["freeze_depth"].eq(0)


def power(studies: int, seeds: int, effect: float) -> dict[str, float]:
    frames = _frames(studies, seeds, effect)
    print(f"{studies} studies x 36 cells, {seeds} seeds, lone effect {effect} SD, alpha 0.05 (BH)")
    figures = {}
    for test in TESTS:
        found = flagged = null = 0
        for df in frames:
            cells = build_cells(df, test=test).cells
            lone = _is_lone(cells)
            found += int(cells.loc[lone, "flag"].iloc[0] == "positive")
            flagged += int(cells.loc[~lone, "flag"].isin(["positive", "negative"]).sum())
            null += int((~lone).sum())
        print(
            f"  {test:9s} power {found / studies:.3f}   false flags {flagged / null:.4f} "
            f"of {null} null cells"
        )
        figures[f"{test}_power"] = round(found / studies, 3)
        figures[f"{test}_false_flags"] = round(flagged / null, 4)
    return figures


def null_studies(studies: int, seeds: int) -> dict[str, float]:
    """Studies with no effect anywhere: the share of cells flagged, and of studies with any."""
    frames = _frames(studies, seeds, 0.0)
    print(f"{studies} null studies x 36 cells, {seeds} seeds, alpha 0.05 (BH)")
    figures = {}
    for test in TESTS:
        flags = [
            int(build_cells(df, test=test).cells["flag"].isin(["positive", "negative"]).sum())
            for df in frames
        ]
        print(
            f"  {test:9s} cells flagged {sum(flags) / (36 * studies):.4f}   "
            f"studies with a flag {np.mean([f > 0 for f in flags]):.3f}"
        )
        figures[f"{test}_null_cells_flagged"] = round(sum(flags) / (36 * studies), 4)
        figures[f"{test}_null_studies_flagged"] = round(float(np.mean([f > 0 for f in flags])), 3)
    return figures


def ties() -> dict[str, float]:
    rng = np.random.default_rng(0)
    diffs = np.round(rng.normal(0.02, 0.03, size=(TIE_CELLS, TIE_PAIRS)) * 100) / 100
    started = time.perf_counter()
    scipy_p = stats.wilcoxon(diffs, axis=1, zero_method=ZERO_METHOD).pvalue
    scipy_s = time.perf_counter() - started
    started = time.perf_counter()
    ours = paired_tests(list(diffs), test="wilcoxon")
    ours_s = time.perf_counter() - started
    gap = np.nanmax(np.abs(np.array([r.p for r in ours]) - scipy_p))
    print(
        f"{TIE_CELLS} cells of {TIE_PAIRS} tied differences, Wilcoxon: scipy's method choice "
        f"{scipy_s:.3f} s, ours {ours_s:.3f} s ({scipy_s / ours_s:.0f}x); largest p gap {gap:.4f}"
    )
    return {"ties_scipy_s": round(scipy_s, 3), "ties_ours_s": round(ours_s, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--effect", type=float, default=3.0)
    add_save_flag(parser)
    args = parser.parse_args()
    figures = {"studies": args.studies, "seeds": args.seeds, "effect_sd": args.effect}
    figures |= power(args.studies, args.seeds, args.effect)
    figures |= null_studies(args.studies, args.seeds)
    figures |= ties()
    if args.save:
        save(args.save, "stats_power", figures)


if __name__ == "__main__":
    main()
