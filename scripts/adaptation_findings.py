"""Put the domain_adaptation study's findings into the recipes' README, from its analysis.

    transferlab-run -m experiment=domain_adaptation
    transferlab-analyze results/domain_adaptation
    python scripts/adaptation_findings.py [results/domain_adaptation/analysis]

Copies what the digest reads (`adaptation.csv`, `adaptation_shift.csv`), the report and the
adaptation figure into `docs/domain_adaptation/`, then replaces the block between the two
markers of `conf/experiment/README.md` with the comparison of each method with
source_only (`transferlab.analysis.adaptation_digest`) of that snapshot.
tests/test_readme_findings.py checks the block is the digest of the snapshot.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from quickstart_findings import publish  # noqa: E402 - scripts/ is on sys.path

from transferlab._helpers import marked_block
from transferlab.analysis.adaptation_digest import adaptation_digest

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "docs" / "domain_adaptation"
README = ROOT / "conf" / "experiment" / "README.md"
START, END = "<!-- adaptation-findings:start -->", "<!-- adaptation-findings:end -->"
FILES = ("adaptation.csv", "adaptation_shift.csv", "report.md")


def readme_block(text: str) -> str:
    """The text between the README's markers."""
    return marked_block(text, START, END)


def main(argv: list[str]) -> int:
    analysis = Path(argv[0] if argv else "results/domain_adaptation/analysis")
    publish(analysis, SNAPSHOT, FILES, README, (START, END), adaptation_digest)
    for figure in sorted((analysis / "figures").glob("adaptation-*.png"))[:1]:
        shutil.copyfile(figure, SNAPSHOT / "adaptation.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
