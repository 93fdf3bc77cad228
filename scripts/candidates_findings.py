"""Put a candidate-ranking study's result into the recipes' README, from its analysis folder.

    transferlab-run -m experiment=candidates && transferlab-analyze results/candidates
    python scripts/candidates_findings.py [candidates|candidate_files] [ANALYSIS]

For the recipe named (default `candidates`), copies what the digest reads (`ranking.csv`,
`candidates.csv`) and the report from ANALYSIS (default `results/<recipe>/analysis`) into
`docs/<recipe>/`, then replaces the recipe's block between its two markers in
`conf/experiment/README.md` with `transferlab.analysis.digest.ranking_digest`
of that snapshot. tests/test_readme_findings.py checks each block is the digest of its snapshot.
"""

from __future__ import annotations

import sys
from pathlib import Path

from quickstart_findings import publish  # noqa: E402 - scripts/ is on sys.path

from transferlab._helpers import marked_block
from transferlab.analysis.digest import ranking_digest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "conf" / "experiment" / "README.md"
#: Each recipe's README markers (its snapshot is docs/<recipe>/).
MARKERS = {
    "candidates": ("<!-- candidates-findings:start -->", "<!-- candidates-findings:end -->"),
    "candidate_files": (
        "<!-- candidate-files-findings:start -->",
        "<!-- candidate-files-findings:end -->",
    ),
}
FILES = ("ranking.csv", "candidates.csv", "report.md")


def snapshot_dir(recipe: str) -> Path:
    """Where the recipe's analysis snapshot is kept."""
    return ROOT / "docs" / recipe


def readme_block(text: str, recipe: str = "candidates") -> str:
    """The text between the recipe's README markers."""
    return marked_block(text, *MARKERS[recipe])


def main(argv: list[str]) -> int:
    recipe = argv[0] if argv else "candidates"
    if recipe not in MARKERS:
        print(f"unknown recipe {recipe!r}; one of {', '.join(MARKERS)}", file=sys.stderr)
        return 2
    analysis = Path(argv[1] if len(argv) > 1 else f"results/{recipe}/analysis")
    publish(analysis, snapshot_dir(recipe), FILES, README, MARKERS[recipe], ranking_digest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
