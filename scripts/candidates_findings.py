"""Put the candidates study's ranking into the recipes' README, from its analysis folder.

    transferlab-run -m experiment=candidates && transferlab-analyze results/candidates
    python scripts/candidates_findings.py [results/candidates/analysis]

Copies what the digest reads (`ranking.csv`, `candidates.csv`) and the report into
`docs/candidates/`, then replaces the block between the two markers of
`src/transferlab/conf/experiment/README.md` with `transferlab.analysis.digest.ranking_digest`
of that snapshot. tests/test_readme_findings.py checks the block is the digest of the snapshot.
"""

from __future__ import annotations

import sys
from pathlib import Path

from quickstart_findings import publish  # noqa: E402 - scripts/ is on sys.path

from transferlab._helpers import marked_block
from transferlab.analysis.digest import ranking_digest

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "docs" / "candidates"
README = ROOT / "src" / "transferlab" / "conf" / "experiment" / "README.md"
START, END = "<!-- candidates-findings:start -->", "<!-- candidates-findings:end -->"
FILES = ("ranking.csv", "candidates.csv", "report.md")


def readme_block(text: str) -> str:
    """The text between the README's markers."""
    return marked_block(text, START, END)


def main(argv: list[str]) -> int:
    analysis = Path(argv[0] if argv else "results/candidates/analysis")
    publish(analysis, SNAPSHOT, FILES, README, (START, END), ranking_digest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
