"""`transferlab-analyze PATH`: a study's (or a results root's) records to a report folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from transferlab._helpers import exit_without_collection
from transferlab.errors import ConfigError

EXIT_BAD_INPUT = 2
# Mirrors of transferlab.analysis constants, so that --help and a bad path answer before the
# scientific stack is imported (tests check they agree).
CORRECTIONS = ("bh", "holm")
TESTS = ("t", "wilcoxon", "signflip")
RULES = ("per_seed", "best_mean")
DEFAULT_ALPHA = 0.05
REPORT_FOLDER = "analysis"


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="transferlab-analyze",
        description="Compare fine-tuned runs with scratch baselines, relate transfer to domain "
        "shift and transferability estimators, and write a report folder.",
    )
    p.add_argument("path", help="a study folder (with records/) or a results root")
    p.add_argument("--out", default=None, help=f"report folder (default PATH/{REPORT_FOLDER})")
    p.add_argument(
        "--correction",
        choices=CORRECTIONS,
        default="bh",
        help="multiple-comparison control across cells (default bh)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help="significance level after correction (default 0.05)",
    )
    p.add_argument(
        "--test",
        choices=TESTS,
        default=TESTS[0],
        help="paired test per cell (default t: the only one whose smallest p does not depend "
        "on the seed count; see docs/analysis.md)",
    )
    p.add_argument(
        "--selection",
        choices=RULES,
        default="per_seed",
        help="how each arm's learning rate is chosen on validation (default per_seed: each "
        "seed its own; best_mean: one per arm from the seeds' mean, the rule before, which "
        "over-flags; see docs/analysis.md)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="a method removes negative transfer only where its interval against scratch "
        "lies above -MARGIN (default 0.02 test accuracy)",
    )
    p.add_argument(
        "--no-shift",
        action="store_true",
        help="skip domain distances and transferability estimators",
    )
    p.add_argument("--no-figures", action="store_true", help="write no PNG figures")
    p.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="examples per dataset for distances and estimators (default 500)",
    )
    p.add_argument(
        "--wandb",
        action="store_true",
        help="also log the analysis to the study's W&B group (offline unless "
        "WANDB_MODE says otherwise)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the analysis; one-line error and exit status 2 on bad input."""
    exit_without_collection()
    args = parser().parse_args(argv)
    if not Path(args.path).expanduser().is_dir():
        print(f"transferlab-analyze: error: no such folder: {args.path}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from transferlab.analysis.pipeline import AnalysisSettings, analyze
    from transferlab.analysis.records import RecordsPathError

    extra = {} if args.max_examples is None else {"max_examples": args.max_examples}
    if args.margin is not None:
        extra["margin"] = args.margin
    try:
        settings = AnalysisSettings(
            correction=args.correction,
            alpha=args.alpha,
            test=args.test,
            selection=args.selection,
            shift=not args.no_shift,
            figures=not args.no_figures,
            **extra,
        )
        results = analyze(args.path, args.out, settings, wandb=args.wandb)
    except (RecordsPathError, ConfigError) as exc:
        print(f"transferlab-analyze: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    cells = results["cells"]
    flags = cells["flag"].value_counts().to_dict() if len(cells) else {}
    print(f"{len(cells)} cells: {flags}")
    print(f"report: {results['files']['report']}")
    if "wandb_dir" in results:
        print(f"wandb run: {results['wandb_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
