"""Put the methods study's findings into the recipes' README, from its analysis folder.

    transferlab-run -m experiment=methods && transferlab-analyze results/methods
    python scripts/methods_findings.py [results/methods/analysis]

Copies what the digest reads (`methods.csv`, `cells.csv`), the report and the gain heatmap into
`docs/methods/`, then replaces the block between the two markers of
`src/transferlab/conf/experiment/README.md` with `transferlab.analysis.digest.methods_digest`
of that snapshot. tests/test_readme_findings.py checks the block is the digest of the snapshot.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from transferlab._helpers import marked_block, replace_marked_block
from transferlab.analysis.digest import methods_digest

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "docs" / "methods"
README = ROOT / "src" / "transferlab" / "conf" / "experiment" / "README.md"
START, END = "<!-- methods-findings:start -->", "<!-- methods-findings:end -->"
FILES = ("methods.csv", "cells.csv", "report.md")
HEATMAP = "gain-heatmap-*.png"


def readme_block(text: str) -> str:
    """The text between the README's markers."""
    return marked_block(text, START, END)


def snapshot(analysis: Path) -> None:
    """Copy what the digest reads, the report and the gain heatmap into docs/methods/."""
    SNAPSHOT.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(analysis / name, SNAPSHOT / name)
    for figure in sorted((analysis / "figures").glob(HEATMAP))[:1]:
        shutil.copyfile(figure, SNAPSHOT / "gain-heatmap.png")


def main(argv: list[str]) -> int:
    analysis = Path(argv[0] if argv else "results/methods/analysis")
    snapshot(analysis)
    replace_marked_block(README, START, END, methods_digest(SNAPSHOT))
    print(f"{README.relative_to(ROOT)} now shows {SNAPSHOT.relative_to(ROOT)} (from {analysis})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
