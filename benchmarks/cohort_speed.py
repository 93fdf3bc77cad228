"""A cohort against its lone runs, side by side in one process: wall time and numbers.

The members are target runs that differ only in seed and learning rate (the quickstart's target
settings: test_resnet, 16 px, 100 digits, from scratch, AdamW). Both ways train in this process on
the same threads, with the same data, so the ratio is what vectorising the members buys, not
process start-up:

  lone    each member through `fit_stage` (what `transferlab-run` trains a run with), in turn;
  cohort  all members through `fit_cohort` (one Lightning fit, one vmapped model).

Then the numbers: each member's test accuracy in the cohort against its lone run's, paired by
member, with a paired t-test and the mean difference's 95% interval (the same up to float
rounding should show no difference), and the step alone (`--steps`): a vmapped forward and
backward of k members against k lone ones, per member.

Usage: python benchmarks/cohort_speed.py [--seeds 15] [--first-seed 0] [--lrs 0.003,0.01]
       [--threads 1] [--save]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from saved import add_save_flag, save  # noqa: E402 - benchmarks/ is on sys.path
from scipy import stats

CONF = Path(__file__).resolve().parents[1] / "conf"
#: The quickstart's target settings, scratch init (no source stage to train).
SETTINGS = ["experiment=quickstart", "init=scratch", "target_size=100", "logger=[]"]


def _stages(seeds: range, lrs: list[float], results: Path, threads: int) -> list:
    from hydra import compose, initialize_config_dir

    import transferlab.cli.run  # noqa: F401 - resolvers
    from transferlab.store import ResultsStore, run_id, stage_configs
    from transferlab.training.run import _with_run_info

    stages = []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for seed in seeds:
            for lr in lrs:
                cfg = compose(
                    "config",
                    overrides=[
                        *SETTINGS, f"paths.results={results}", f"seed={seed}", f"train.lr={lr}",
                        f"threads={threads}",
                    ],
                )  # fmt: skip
                _, target = stage_configs(cfg)
                rid = run_id(target)
                run_dir = ResultsStore(cfg.paths.results, cfg.study).run_dir(rid)
                stages.append(_with_run_info(target, rid, run_dir))
    return stages


def _step_ratio(members: int, batch: int, size: int, steps: int = 10) -> tuple[float, float]:
    """ms per member-step of a vmapped step of `members` and of lone steps, test_resnet."""
    import timm
    from torch.func import functional_call, vmap

    models = [timm.create_model("test_resnet", num_classes=10) for _ in range(members)]
    base = models[0]
    names = [n for n, _ in base.named_parameters()]
    buffers = {n: torch.stack([m.get_buffer(n) for m in models]) for n, _ in base.named_buffers()}
    x = torch.randn(members, batch, 3, size, size)
    y = torch.randint(0, 10, (members, batch))

    def loss(p: dict, b: dict, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(functional_call(base, (p, b), (xs,)), ys)

    started = time.perf_counter()
    for _ in range(steps):
        params = {n: torch.stack([m.get_parameter(n) for m in models]) for n in names}
        vmap(loss, randomness="error")(params, buffers, x, y).sum().backward()
    together = (time.perf_counter() - started) / steps / members
    started = time.perf_counter()
    for _ in range(steps):
        for i, model in enumerate(models):
            torch.nn.functional.cross_entropy(model(x[i]), y[i]).backward()
    alone = (time.perf_counter() - started) / steps / members
    return together * 1000, alone * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=15)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--lrs", default="0.003,0.01")
    parser.add_argument("--threads", type=int, default=1)
    add_save_flag(parser)
    args = parser.parse_args()
    from transferlab.training.cohort import fit_cohort
    from transferlab.training.fit import fit_stage
    from transferlab.training.run import _training_data

    torch.set_num_threads(args.threads)
    lrs = [float(v) for v in args.lrs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        stages = _stages(seeds, lrs, Path(tmp), args.threads)
        data = [_training_data(stage) for stage in stages]
        started = time.perf_counter()
        cohort = fit_cohort(stages, data, [None] * len(stages))
        cohort_s = time.perf_counter() - started
        started = time.perf_counter()
        lone = [
            fit_stage(stage, splits, train, Path(tmp) / f"lone-{i}")
            for i, (stage, (splits, train)) in enumerate(zip(stages, data))
        ]
        lone_s = time.perf_counter() - started
    mine = np.array([r.test["acc"] for r in cohort])
    theirs = np.array([r.test["acc"] for r in lone])
    diff = mine - theirs
    if diff.std() > 0:
        pvalue = float(stats.ttest_rel(mine, theirs).pvalue)
        low, high = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=stats.sem(diff))
    else:  # the same accuracy on every member: nothing to test
        pvalue, low, high = 1.0, 0.0, 0.0
    vmapped, single = _step_ratio(len(stages), 32, 16)
    print(
        f"{len(stages)} members (seeds {seeds.start}-{seeds.stop - 1} x {len(lrs)} lrs), "
        f"{args.threads} thread(s)"
    )
    print(f"lone runs in turn  {lone_s:7.1f} s")
    print(f"one cohort         {cohort_s:7.1f} s   ({lone_s / cohort_s:.2f}x the lone runs)")
    print(f"step alone: {vmapped:.1f} ms per member vmapped, {single:.1f} ms lone")
    print(
        f"test accuracy, cohort - lone (paired by member): mean {diff.mean():+.4f} "
        f"[{low:+.4f}, {high:+.4f}], paired t p = {pvalue:.3g}; "
        f"{int((diff != 0).sum())} of {len(diff)} members differ at all"
    )
    if args.save:
        save(
            args.save,
            "cohort_speed",
            {
                "members": len(stages),
                "seeds": [seeds.start, seeds.stop - 1],
                "threads": args.threads,
                "lone_s": round(lone_s, 1),
                "cohort_s": round(cohort_s, 1),
                "step_ms_vmapped": round(vmapped, 2),
                "step_ms_lone": round(single, 2),
                "acc_diff_mean": round(float(diff.mean()), 5),
                "acc_diff_low": round(float(low), 5),
                "acc_diff_high": round(float(high), 5),
                "paired_p": round(pvalue, 4),
            },
        )


if __name__ == "__main__":
    main()
