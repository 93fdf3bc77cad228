"""Put the measured performance figures into the README, from what the benchmarks saved.

    python benchmarks/<benchmark>.py --save     # each writes docs/performance/<benchmark>.json
    python scripts/performance_table.py         # the README's table, from those files

The table is rendered between the README's two markers; tests/test_readme_performance.py
checks it equals the rendering of `docs/performance/`, so the README never shows a typed
figure. Each target is the project's throughput goal; a row says whether the figure reaches it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from transferlab._helpers import marked_block, replace_marked_block

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "performance"
README = ROOT / "README.md"
START, END = "<!-- performance:start -->", "<!-- performance:end -->"
#: The models' README holds one row per model preset, from `models_speed`.
MODELS_README = ROOT / "src" / "transferlab" / "models" / "README.md"
PRESETS = ROOT / "conf" / "model"
MODELS_START, MODELS_END = "<!-- models-speed:start -->", "<!-- models-speed:end -->"
#: docs/analysis.md holds the paired tests' power table, from `stats_power`.
ANALYSIS_DOC = ROOT / "docs" / "analysis.md"
POWER_START, POWER_END = "<!-- power:start -->", "<!-- power:end -->"
PAIRED_TESTS = ("t", "wilcoxon", "signflip")

#: The throughput targets (see each row): minutes, seconds, or ratios.
QUICKSTART_TARGET_MIN = 12
RELAUNCH_TARGET_S = 10
NAIVE_SPEEDUP_TARGET = 10
FLOOR_RATIO_TARGET = 1
ONE_RUN_RATIO_TARGET = 1.10
ANALYSIS_TARGET_S = 5

Row = tuple[str, str, str, str]  # what, figure, target, how


def verdict(value: float, target: float, *, at_most: bool = True, unit: str = "") -> str:
    """'reached' or 'not reached', with the target."""
    ok = value <= target if at_most else value >= target
    bound = f"{'<=' if at_most else '>='} {target:g}{unit}"
    return f"{bound}: {'reached' if ok else '**not reached**'}"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60):d} s"


def quickstart_rows(f: dict[str, Any]) -> list[Row]:
    how = "`python benchmarks/quickstart_speed.py`"
    reproduced = "equal" if f["findings_reproduced"] else "**differ from**"
    return [
        (
            f"quickstart study from a clean results folder ({f['grid_points']} grid points, "
            f"{f['target_runs']} target runs; the rest repeat a run and are planned away)",
            f"{_minutes(f['wall_s'])}, of which {f['plan_s']:g} s plan the grid; the console "
            f"holds {f['console_lines']} lines; its findings {reproduced} the README's",
            verdict(f["wall_s"] / 60, QUICKSTART_TARGET_MIN, unit=" min"),
            how,
        ),
        (
            "the same command again (every run done: nothing composed or trained)",
            f"{f['relaunch_s']:g} s",
            verdict(f["relaunch_s"], RELAUNCH_TARGET_S, unit=" s"),
            how,
        ),
        ("`transferlab-analyze` on the quickstart study", f"{f['analyze_s']:g} s", "", how),
    ]


def study_rows(f: dict[str, Any]) -> list[Row]:
    naive, built, floor = f["naive_s"], f["transferlab_s"], f["floor_s"]
    lone = f.get("lone_s")
    cohorts = f", one run per job {lone:g} s ({lone / built:.2f}x slower)" if lone else ""
    return [
        (
            f"one study grid side by side ({f['grid_points']} grid points of the quickstart's "
            f"shape, {f['target_runs']} target runs): naive template, transferlab (cohorts), "
            "compute floor",
            f"naive {naive:g} s, transferlab {built:g} s, floor {floor:g} s: "
            f"{naive / built:.1f}x faster than naive, {built / floor:.2f}x the floor{cohorts}",
            f"{verdict(naive / built, NAIVE_SPEEDUP_TARGET, at_most=False, unit='x')}; "
            f"{verdict(built / floor, FLOOR_RATIO_TARGET, unit='x')}",
            "`python benchmarks/study_speed.py`",
        )
    ]


def cohort_rows(f: dict[str, Any]) -> list[Row]:
    lone, cohort = f["lone_s"], f["cohort_s"]
    seeds = f"seeds {f['seeds'][0]}-{f['seeds'][1]}"
    return [
        (
            f"a cohort of {f['members']} target runs ({seeds} x learning rates, quickstart "
            f"target settings, {f['threads']} thread) against the same runs one by one, in one "
            "process",
            f"{lone:g} s lone vs {cohort:g} s as one cohort ({lone / cohort:.2f}x); a step "
            f"{f['step_ms_vmapped']:g} ms per member vmapped vs {f['step_ms_lone']:g} ms lone; "
            f"test accuracy cohort minus lone {f['acc_diff_mean']:+.4f} "
            f"[{f['acc_diff_low']:+.4f}, {f['acc_diff_high']:+.4f}], paired t p = "
            f"{f['paired_p']:g}",
            "",
            f"`python benchmarks/cohort_speed.py --seeds {f['seeds'][1] - f['seeds'][0] + 1}`",
        )
    ]


def one_run_rows(f: dict[str, Any]) -> list[Row]:
    lightning, plain = f["lightning_s"], f["plain_s"]
    same = "same accuracies" if f["same_accuracies"] else "**accuracies differ**"
    return [
        (
            f"one target run, Lightning (`fit_stage`) vs a plain PyTorch loop, {f['steps']} "
            f"steps at {f['image_size']} px ({same})",
            f"{lightning:.2f} s vs {plain:.2f} s ({lightning / plain:.2f}x, "
            f"{lightning - plain:+.2f} s); `Trainer(barebones=True)` "
            f"{f['barebones_s'] / plain:.2f}x",
            verdict(lightning / plain, ONE_RUN_RATIO_TARGET, unit="x"),
            f"`python benchmarks/lightning_overhead.py --image-size {f['image_size']}`",
        )
    ]


def analysis_rows(f: dict[str, Any]) -> list[Row]:
    analyse = f["cached_analyse_s"]
    again = f["cached_load_s"] + analyse
    return [
        (
            f"analysing {f['records']:,} simulated records again in a fresh process (columnar "
            "table cache; the median of 3 processes)",
            f"{f['cached_load_s']:g} s load + {analyse:g} s analysis = {again:.1f} s (the 3: "
            f"{', '.join(f'{t:g}' for t in f['again_totals_s'])} s); "
            f"{f['parse_s'] + f['analyse_s']:.1f} s when every file is parsed the first time",
            verdict(again, ANALYSIS_TARGET_S, unit=" s"),
            "`python benchmarks/analysis_speed.py`",
        )
    ]


def models_rows(f: dict[str, Any]) -> list[Row]:
    steps = [
        (k.split("_")[-2], v)
        for k, v in f.items()
        if k.startswith("test_resnet_") and k.endswith("px_ms")
    ]
    sizes = " / ".join(size for size, _ in steps)
    times = " / ".join(f"{ms:g}" for _, ms in steps)
    return [
        (
            f"forward + backward of a batch of {f['batch']} at {sizes}, `test_resnet`",
            f"{times} ms",
            "",
            "`python benchmarks/models_speed.py`",
        )
    ]


def stream_rows(f: dict[str, Any]) -> list[Row]:
    """Per folder size: each path's setup, loader rate and peak RSS; then the study's row."""
    how = "`python benchmarks/stream_memory.py`"
    sizes = sorted({int(k.split("_")[1]) for k in f if k.startswith("stream_") and k[7].isdigit()})
    rows: list[Row] = []
    for n in sizes:
        parts = []
        for path in ("memory", "stream"):
            g = {k.split("_", 2)[2]: v for k, v in f.items() if k.startswith(f"{path}_{n}_")}
            workers = (
                f", largest worker {g['worker_peak_mib']:,.0f} MiB" if g["worker_peak_mib"] else ""
            )
            parts.append(
                f"{path}: setup {g['setup_s']:g} s, loader {g['samples_per_s']:,.0f} "
                f"samples/s, peak RSS {g['main_peak_mib']:,.0f} MiB (from "
                f"{g['baseline_mib']:,.0f} before any data){workers}"
            )
        what = (
            f"an image folder of {n:,} images (JPEG/PNG, 48-128 px), loaded at "
            f"{f['image_size']} px: decoded in memory vs streamed by {f['workers']} workers"
        )
        rows.append((what, "; ".join(parts), "", how))
    if "fingerprint_first_s" in f:
        n = max(sizes)
        ratio = f["fingerprint_first_s"] / max(f["fingerprint_later_s"], 0.01)
        rows.append(
            (
                f"the {n:,}-image folder's fingerprint (its run identity), in a fresh process: "
                "nothing remembered vs a later process (listed and stat'ed only)",
                f"{f['fingerprint_first_s']:g} s vs {f['fingerprint_later_s']:g} s ({ratio:,.0f}x)",
                "",
                how,
            )
        )
    if "study_s" in f:
        rows.append(
            (
                f"a study on the {f['study_images']:,}-image folder through `transferlab-run -m` "
                f"(streamed, 2 joblib workers, {f['study_runs']} records)",
                f"{f['study_s']:g} s; peak RSS of its largest process "
                f"{f['study_peak_mib']:,.0f} MiB",
                "",
                how,
            )
        )
    return rows


GPU_VARIANTS = ("fp32", "bf16", "nhwc", "on-device")


def gpu_rows(f: dict[str, Any] | None, machine: dict[str, Any] | None) -> list[Row]:
    how = "`python benchmarks/gpu_speed.py --study`"
    what = "GPU path, resnet18 at 32 px: training samples/s, each step of the path"
    if f is None or not (machine or {}).get("gpu"):
        missing = "not measured: no GPU was available where these figures were taken"
        return [(what, missing, "", how)]
    rates = ", ".join(f"{v} {f[f'{v}_samples_per_s']:,}" for v in GPU_VARIANTS)
    if "cohort_samples_per_s" in f:
        rates += f", a cohort of {f['cohort_members']} {f['cohort_samples_per_s']:,}"
    study = f"; the study grid {f['study_s']:g} s" if "study_s" in f else ""
    if "study_lone_s" in f:
        study += f" in cohorts, {f['study_lone_s']:g} s one run per job"
    return [(what, f"{machine['gpu']}: {rates}{study}", "", how)]


def gpu_stream_rows(f: dict[str, Any] | None, machine: dict[str, Any] | None) -> list[Row]:
    """The streaming path on a GPU: training steps fed from memory or from a stream."""
    how = "`python benchmarks/stream_memory.py --device cuda --model resnet18 --workers 8`"
    what = "GPU path, an image folder in memory vs streamed: training samples/s"
    if f is None or not (machine or {}).get("gpu"):
        missing = "not measured: no GPU was available where these figures were taken"
        return [(what, missing, "", how)]
    n = max(int(k.split("_")[1]) for k in f if k.startswith("stream_") and k[7].isdigit())
    memory, stream = f[f"memory_{n}_samples_per_s"], f[f"stream_{n}_samples_per_s"]
    figure = (
        f"{machine['gpu']}, {machine['cpu_cores']} CPU cores, {f['model']} at {f['image_size']} "
        f"px, batch 64, {n:,} images: in memory {memory:,.0f}, streamed by {f['workers']} "
        f"workers {stream:,.0f} ({stream / memory:.2f}x); peak RSS "
        f"{f[f'memory_{n}_main_peak_mib']:,.0f} vs {f[f'stream_{n}_main_peak_mib']:,.0f} MiB"
    )
    return [(what, figure, "", how)]


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


SECTIONS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "quickstart_speed": quickstart_rows,
    "study_speed": study_rows,
    "cohort_speed": cohort_rows,
    "lightning_overhead": one_run_rows,
    "analysis_speed": analysis_rows,
    "models_speed": models_rows,
    "stream_memory": stream_rows,
}


def render(folder: Path = FIGURES) -> str:
    """The README's performance block, from the benchmark files in `folder`."""
    rows: list[Row] = []
    machines, dates = set(), set()
    for name, make in SECTIONS.items():
        saved = _load(folder, name)
        if saved is None:
            rows.append((f"`{name}`", "not measured yet", "", f"`benchmarks/{name}.py --save`"))
            continue
        rows.extend(make(saved["figures"]))
        machines.add(f"{saved['machine']['cpu_cores']} CPU cores")
        dates.add(saved["measured"])
    gpu = _load(folder, "gpu_speed")
    rows.extend(gpu_rows(gpu and gpu["figures"], gpu and gpu["machine"]))
    stream = _load(folder, "stream_memory_gpu")
    rows.extend(gpu_stream_rows(stream and stream["figures"], stream and stream["machine"]))
    dates.update(saved["measured"] for saved in (gpu, stream) if saved is not None)
    head = (
        f"Measured on {', '.join(sorted(machines)) or 'no machine yet'} (no GPU unless the GPU "
        f"row names one), {', '.join(sorted(dates))}; each benchmark prints its figures and "
        "saves them with `--save`, and `python scripts/performance_table.py` writes this table."
    )
    lines = [head, "", "| what | figure | target | how |", "|---|---|---|---|"]
    lines += [f"| {what} | {figure} | {target} | {how} |" for what, figure, target, how in rows]
    return "\n".join(lines) + "\n"


def _preset_row(key: str, spec: dict[str, Any], f: dict[str, Any], sizes: list[str]) -> str:
    kwargs = ", ".join(f"`{k}: {v}`" for k, v in (spec.get("kwargs") or {}).items())
    params = f.get(f"{key}_params")
    shown = f"{params / 1e6:.1f} M" if params and params >= 1e6 else f"{(params or 0) / 1e3:.0f} k"
    times = [f"{f[f'{key}_{px}_ms']:g} ms" if f"{key}_{px}_ms" in f else "failed" for px in sizes]
    model = f"`{spec['name']}`" + (f", {kwargs}" if kwargs else "")
    return f"| `{key}` | {model} | {shown if params else 'n/a'} | " + " | ".join(times) + " |"


def models_table(folder: Path = FIGURES, presets: Path = PRESETS) -> str:
    """The models' README block: each preset of conf/model with its timm model and settings,
    parameters and step time per image size, from `models_speed` in `folder`."""
    saved = _load(folder, "models_speed")
    if saved is None:
        return "Not measured yet: `python benchmarks/models_speed.py --save`.\n"
    f, machine = saved["figures"], saved["machine"]
    sizes = sorted(
        {k.rsplit("_", 2)[-2] for k in f if k.endswith("px_ms")}, key=lambda s: int(s[:-2])
    )
    lines = [
        f"Forward+backward of a batch of {f['batch']} (3 channels, 10 classes), median step, "
        f"{machine['cpu_cores']} CPU cores, torch {machine['torch']}, measured {saved['measured']} "
        "(`python benchmarks/models_speed.py --save`, then `python scripts/performance_table.py`"
        " writes this table):",
        "",
        "| preset | timm model, kwargs | params | " + " | ".join(sizes) + " |",
        "|" + "---|" * (3 + len(sizes)),
    ]
    for path in sorted(presets.glob("*.yaml")):
        lines.append(_preset_row(path.stem, yaml.safe_load(path.read_text()), f, sizes))
    return "\n".join(lines) + "\n"


def power_table(folder: Path = FIGURES) -> str:
    """docs/analysis.md's block: power and false flags of each paired test, and the cost of
    ties, from `stats_power` in `folder`."""
    saved = _load(folder, "stats_power")
    if saved is None:
        return "Not measured yet: `python benchmarks/stats_power.py --save`.\n"
    f = saved["figures"]
    lines = [
        f"Measured with `python benchmarks/stats_power.py --studies {f['studies']} --save` on "
        f"{saved['measured']}: {f['studies']} simulated studies of 36 cells, {f['seeds']} seeds, "
        "accuracies on 300 test examples (so runs tie), one cell with a planted gain of "
        f"{f['effect_sd']:g} SDs of a paired difference, BH at alpha 0.05:",
        "",
        "| test | power (lone cell flagged) | null cells flagged | null studies: cells flagged "
        "| null studies with any flag |",
        "|---|---|---|---|---|",
    ]
    for test in PAIRED_TESTS:
        lines.append(
            f"| `{test}` | {f[f'{test}_power']:g} | {f[f'{test}_false_flags']:g} | "
            f"{f[f'{test}_null_cells_flagged']:g} | {f[f'{test}_null_studies_flagged']:g} |"
        )
    lines += [
        "",
        f"Ties: 200 cells of 10 tied differences take {f['ties_ours_s']:g} s with the exact "
        "enumeration of every cell at once (p-values, floors and the inverted intervals), "
        f"against {f['ties_scipy_s']:g} s for scipy's p-values alone (its choice under ties: a "
        "permutation test per cell); the p-values are the same.",
    ]
    return "\n".join(lines) + "\n"


def readme_block(text: str) -> str:
    """The text between the README's markers."""
    return marked_block(text, START, END)


def main() -> int:
    replace_marked_block(README, START, END, render())
    replace_marked_block(MODELS_README, MODELS_START, MODELS_END, models_table())
    replace_marked_block(ANALYSIS_DOC, POWER_START, POWER_END, power_table())
    print(f"README, models and analysis tables now show {FIGURES.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
