"""Put the methods study's findings into the recipes' README, from its analysis folder.

    transferlab-run -m experiment=methods && transferlab-analyze results/methods
    python scripts/methods_findings.py [results/methods/analysis]

Copies what the digest reads (`methods.csv`, `cells.csv`), the report and the gain heatmap into
`docs/methods/`, then replaces the block between the two markers of
`conf/experiment/README.md` with `transferlab.analysis.digest.methods_digest`
of that snapshot. tests/test_readme_findings.py checks the block is the digest of the snapshot.
"""

from __future__ import annotations

import sys
from pathlib import Path

from quickstart_findings import publish  # noqa: E402 - scripts/ is on sys.path

from transferlab._helpers import marked_block
from transferlab.analysis.digest import methods_digest

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "docs" / "methods"
README = ROOT / "conf" / "experiment" / "README.md"
START, END = "<!-- methods-findings:start -->", "<!-- methods-findings:end -->"
FILES = ("methods.csv", "cells.csv", "report.md")


def readme_block(text: str) -> str:
    """The text between the README's markers."""
    return marked_block(text, START, END)


def main(argv: list[str]) -> int:
    analysis = Path(argv[0] if argv else "results/methods/analysis")
    publish(analysis, SNAPSHOT, FILES, README, (START, END), methods_digest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
