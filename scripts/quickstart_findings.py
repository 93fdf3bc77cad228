"""Put the quickstart's findings into the README, from the report `transferlab-analyze` wrote.

    python scripts/quickstart_findings.py [results/quickstart/analysis]

Copies the analysis files the digest reads (and the report and its gain heatmap) into
`docs/quickstart/`, then replaces the README's block between the two markers with the digest
of that snapshot (`transferlab.analysis.digest`). tests/test_readme_findings.py checks that the
README's block is the digest of the snapshot, so the README never shows hand-copied figures.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from transferlab._helpers import marked_block, replace_marked_block
from transferlab.analysis.digest import DIGEST_FILES, digest

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "docs" / "quickstart"
README = ROOT / "README.md"
START, END = "<!-- quickstart-findings:start -->", "<!-- quickstart-findings:end -->"
HEATMAP = "gain-heatmap-*.png"
#: What the snapshot keeps: the files the digest reads, and the report.
FILES = (*DIGEST_FILES, "report.md")


def readme_block(text: str) -> str:
    """The text between the README's markers."""
    return marked_block(text, START, END)


def publish(
    analysis: Path,
    folder: Path,
    files: tuple[str, ...],
    readme: Path,
    markers: tuple[str, str],
    render: Callable[[Path], str],
) -> None:
    """Snapshot `files` of an analysis folder into `folder`, then write `render(folder)`
    between the `markers` of `readme` (the recipes' findings scripts share this)."""
    snapshot(analysis, folder, files)
    replace_marked_block(readme, *markers, render(folder))
    print(f"{readme.relative_to(ROOT)} now shows {folder.relative_to(ROOT)} (from {analysis})")


def snapshot(analysis: Path, folder: Path = SNAPSHOT, files: tuple[str, ...] = FILES) -> None:
    """Copy `files` of the analysis folder and its first gain heatmap into `folder` (nothing to
    copy when the analysis folder is the snapshot: only the digest is rendered again)."""
    if analysis.resolve() == folder.resolve():
        return
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(analysis / name, folder / name)
    report = folder / "report.md"
    if report.exists():  # the report names its results folder: as the README's command does,
        study = analysis.resolve().parent  # never by a machine's path (which may be outside
        text = report.read_text().replace(str(study), f"results/{study.name}")  # the repo)
        report.write_text(text)
    for figure in sorted((analysis / "figures").glob(HEATMAP))[:1]:
        shutil.copyfile(figure, folder / "gain-heatmap.png")


def main(argv: list[str]) -> int:
    analysis = Path(argv[0] if argv else "results/quickstart/analysis")
    publish(analysis, SNAPSHOT, FILES, README, (START, END), digest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
