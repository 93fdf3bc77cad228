"""Put the drift study's findings into the recipes' README, from its analysis.

    transferlab-run -m experiment=drift
    transferlab-eval results/drift --drift
    transferlab-analyze results/drift
    python scripts/drift_findings.py [results/drift/analysis]

Copies what the digest reads (`drift.csv`, `drift_gain.csv`, `forgetting.csv`,
`drift_shift.csv`), the report and the drift figure into `docs/drift/`, then replaces the block
between the two markers of `conf/experiment/README.md` with the digest
(`transferlab.analysis.drift_digest`) of that snapshot.
tests/test_readme_findings.py checks the block is the digest of the snapshot.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from quickstart_findings import publish  # noqa: E402 - scripts/ is on sys.path

from transferlab._helpers import marked_block
from transferlab.analysis.drift_digest import drift_digest

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "docs" / "drift"
README = ROOT / "conf" / "experiment" / "README.md"
START, END = "<!-- drift-findings:start -->", "<!-- drift-findings:end -->"
FILES = ("drift.csv", "drift_gain.csv", "forgetting.csv", "drift_shift.csv", "report.md")


def readme_block(text: str) -> str:
    """The text between the README's markers."""
    return marked_block(text, START, END)


def main(argv: list[str]) -> int:
    analysis = Path(argv[0] if argv else "results/drift/analysis")
    publish(analysis, SNAPSHOT, FILES, README, (START, END), drift_digest)
    for figure in sorted((analysis / "figures").glob("drift-*.png"))[:1]:
        shutil.copyfile(figure, SNAPSHOT / "drift.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
