"""Put the unsupervised_source study's findings into the recipes' README, from its analysis.

    transferlab-run -m experiment=unsupervised_source
    transferlab-analyze results/unsupervised_source
    python scripts/objectives_findings.py [results/unsupervised_source/analysis]

Copies what the digests read (`objectives.csv`, `cells.csv`), the report and the gain heatmap
into `docs/unsupervised_source/`, then replaces the block between the two markers of
`conf/experiment/README.md` with the gains against scratch and the comparison
with the supervised sources (`transferlab.analysis.digest`) of that snapshot.
tests/test_readme_findings.py checks the block is the digest of the snapshot.
"""

from __future__ import annotations

import sys
from pathlib import Path

from quickstart_findings import publish  # noqa: E402 - scripts/ is on sys.path

from transferlab._helpers import marked_block
from transferlab.analysis.digest import objectives_digest

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "docs" / "unsupervised_source"
README = ROOT / "conf" / "experiment" / "README.md"
START, END = "<!-- objectives-findings:start -->", "<!-- objectives-findings:end -->"
FILES = ("objectives.csv", "cells.csv", "report.md")


def readme_block(text: str) -> str:
    """The text between the README's markers."""
    return marked_block(text, START, END)


def main(argv: list[str]) -> int:
    analysis = Path(argv[0] if argv else "results/unsupervised_source/analysis")
    publish(analysis, SNAPSHOT, FILES, README, (START, END), objectives_digest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
