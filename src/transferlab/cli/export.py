"""`transferlab-export STUDY --to DIR`: a study's source stages as weights files, for `init=file`.

Each completed source stage becomes `DIR/<source>-e<epochs>-s<seed>.safetensors` and a row of
`DIR/manifest.csv` (see `transferlab.training.export`). A study on other data then fine-tunes
them with `init=file init_path=DIR/<file>`, and the candidate ranking scores them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from transferlab._helpers import exit_without_collection
from transferlab.errors import ConfigError

EXIT_BAD_INPUT = 2


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="transferlab-export",
        description="Write a study's completed source stages as .safetensors weights files "
        "(init=file candidates) with a manifest.csv.",
    )
    p.add_argument("study", help="a study folder (results/<study>, with records/)")
    p.add_argument("--to", required=True, type=Path, help="folder the weights files go to")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Export; one-line error and exit status 2 on bad input."""
    exit_without_collection()
    args = parser().parse_args(argv)
    study = Path(args.study).expanduser()
    if not (study / "records").is_dir():
        print(f"transferlab-export: error: {args.study} is no study folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    from transferlab.training.export import MANIFEST, export_sources

    try:
        manifest = export_sources(study, args.to)
    except ConfigError as exc:
        print(f"transferlab-export: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{len(manifest)} weights files written to {args.to} (listed in {MANIFEST})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
