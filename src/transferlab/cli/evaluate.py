"""`transferlab-eval STUDY --on DATA ...` (or `--drift`): test a study's kept weights on
other datasets or shifts, as records of stage `eval` that `transferlab-analyze` pairs like any
target run.

`--on` takes a data preset (`digits_rot45`, one of `conf/data/`, or of `--config-dir DIR`'s
`data/`) or a dataset spec in YAML (`'{name: digits, shifts: [{name: noise, std: 0.3}]}'`).
Runs trained with `save_weights=true` are evaluated; the others are counted and named.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from transferlab._helpers import exit_without_collection
from transferlab.errors import ConfigError

EXIT_BAD_INPUT = 2
#: How many runs without kept weights are named on the console.
NAMED_MISSING = 5


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="transferlab-eval",
        description="Test a study's kept weights (save_weights=true) on other datasets or "
        "shifts; writes eval records that transferlab-analyze reads.",
    )
    p.add_argument("study", help="a study folder (results/<study>, with records/)")
    p.add_argument(
        "--on",
        action="append",
        metavar="DATA",
        help="a data preset name or a YAML dataset spec (repeat for several)",
    )
    p.add_argument(
        "--drift",
        action="store_true",
        help="a drift study's evaluations: step 0's runs from the source on every later step "
        "(the static strategy), every sequential step on step 0 (forgetting)",
    )
    p.add_argument("--config-dir", type=Path, default=None, help="your own configs' folder")
    p.add_argument("--force", action="store_true", help="evaluate again what was evaluated")
    return p


def dataset_spec(text: str, config_dir: Path | None) -> dict[str, Any]:
    """The spec `--on` names: a preset of the data group (yours first), or inline YAML."""
    from omegaconf import OmegaConf

    from transferlab.data import normalize_spec
    from transferlab.presets import load_preset, preset_names

    mine = config_dir / "data" / f"{text}.yaml" if config_dir else None
    if mine is not None and mine.is_file():
        spec: Any = OmegaConf.to_container(OmegaConf.load(mine), resolve=True)
    elif text in preset_names("data"):
        spec = OmegaConf.to_container(load_preset("data", text), resolve=True)
    else:
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError:
            spec = None
        if not isinstance(spec, dict):
            names = ", ".join(preset_names("data"))
            raise ConfigError(f"--on {text!r} is neither a data preset ({names}) nor a spec")
    return normalize_spec(spec)


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate; one-line error and exit status 2 on bad input."""
    exit_without_collection()
    args = parser().parse_args(argv)
    if bool(args.on) == args.drift:
        print("transferlab-eval: error: give --on DATA or --drift (one of them)", file=sys.stderr)
        return EXIT_BAD_INPUT
    study = Path(args.study).expanduser().resolve()
    if not (study / "records").is_dir():
        print(f"transferlab-eval: error: {args.study} is no study folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    from transferlab.training.evaluate import evaluate_study

    try:
        specs = None if args.drift else [dataset_spec(text, args.config_dir) for text in args.on]
        written, done, missing = evaluate_study(study, specs, args.force)
    except ConfigError as exc:
        print(f"transferlab-eval: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{written} evaluations written, {done} done before")
    if missing:
        named = ", ".join(missing[:NAMED_MISSING]) + (
            ", ..." if len(missing) > NAMED_MISSING else ""
        )
        print(f"{len(missing)} completed runs kept no weights (save_weights=false): {named}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
