"""Cohorts (`training/cohort.py`): runs that differ only in seed and learning rate, trained as one
vectorised model, give each member the numbers its lone run gets, up to float rounding.

Real Hydra composition, real data, a real Lightning Trainer for the cohort and for each lone run
(`fit_stage`, what `transferlab-run` trains with).
"""

from __future__ import annotations

import csv
import itertools
import logging

import lightning as L
import pytest
import timm
import torch
from safetensors.torch import save_file

from transferlab.store import ResultsStore, run_id, stage_configs
from transferlab.training.cohort import CohortModule, fit_cohort, why_alone
from transferlab.training.fit import build_module, fit_stage
from transferlab.training.loaders import train_loader
from transferlab.training.module import make_optimizer
from transferlab.training.run import _training_data, _with_run_info

#: (seed, lr): learning rates where a lone run on 1 and on 2 threads agrees to 1e-3 after three
#: epochs of SGD (at 0.01, seed 1 drifts by 2e-3 within an epoch, alone as in a cohort).
MEMBERS = list(itertools.product((0, 1), (0.003, 0.001)))
#: Float rounding of a batched convolution against a lone one, after a few epochs of SGD. (Adam
#: turns rounding in a near-zero gradient into a step of the full learning rate: under AdamW a
#: lone run on 1 and on 2 threads already differs in the third decimal of its validation loss
#: after an epoch, and so does a cohort member; SGD keeps rounding at rounding size.)
ATOL = 1e-3


def _stage(compose, tmp_path, seed: int, lr: float, *extra: str):
    cfg = compose(
        "init=scratch", f"seed={seed}", f"train.lr={lr}", "threads=1", "logger=[csv]", *extra
    )
    _, target = stage_configs(cfg)
    rid = run_id(target)
    store = ResultsStore(cfg.paths.results, cfg.study)
    return _with_run_info(target, rid, store.run_dir(rid))


def _members(compose, tmp_path, *extra: str, members=MEMBERS):
    stages = [_stage(compose, tmp_path, s, lr, *extra) for s, lr in members]
    return stages, [_training_data(stage) for stage in stages]


def test_each_members_first_step_loss_is_its_lone_runs(compose, tmp_path):
    stages, data = _members(compose, tmp_path)
    modules, lone = [], []
    for stage, (splits, train) in zip(stages, data):
        L.seed_everything(int(stage.seed), verbose=False)
        module, _ = build_module(stage, splits, None)
        modules.append(module)
        batch = next(iter(train_loader(train, int(stage.budget.batch_size), int(stage.seed))))
        lone.append(batch)
    expected = []
    for module, (images, labels) in zip(modules, lone):
        module.train()
        inputs = (images.float() / 255 - module.input_mean) / module.input_std
        expected.append(float(torch.nn.functional.cross_entropy(module.model(inputs), labels)))
    fresh = []
    for stage, (splits, _) in zip(stages, data):
        L.seed_everything(int(stage.seed), verbose=False)
        fresh.append(build_module(stage, splits, None)[0])
    cohort = CohortModule(fresh)
    cohort.on_train_start()
    cohort.train()
    losses = cohort.member_losses(lone).tolist()
    assert losses == pytest.approx(expected, abs=1e-5)
    # one loss per seed (before any step the learning rate does not show; the next test does)
    assert len(set(expected)) == len({seed for seed, _ in MEMBERS})


def _first_optimizer(configured) -> torch.optim.Optimizer:
    return configured["optimizer"] if isinstance(configured, dict) else configured


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_a_cohorts_updates_run_fused_and_a_lone_runs_do_not(compose, tmp_path, optimizer):
    """A cohort steps k optimisers a batch: their updates run fused where the optimiser offers
    it; a lone run keeps its usual update (its numbers, and a resumed run's, are unchanged)."""
    stages, data = _members(compose, tmp_path, f"optimizer={optimizer}", members=MEMBERS[:2])
    modules = [build_module(stage, splits, None)[0] for stage, (splits, _) in zip(stages, data)]
    lone = _first_optimizer(modules[0].configure_optimizers())
    assert not any(group["fused"] for group in lone.param_groups)
    together = [_first_optimizer(o) for o in CohortModule(modules).configure_optimizers()]
    assert len(together) == 2 and all(g["fused"] for o in together for g in o.param_groups)
    assert [type(o) for o in together] == [type(lone)] * 2
    # an optimiser without a fused update keeps its own, and so do parameters it cannot fuse
    params = [{"params": [torch.nn.Parameter(torch.zeros(3))]}]
    assert isinstance(make_optimizer(torch.optim.RMSprop, params, fused=True), torch.optim.RMSprop)
    whole = [{"params": [torch.nn.Parameter(torch.zeros(3, dtype=torch.int64), False)]}]
    assert not make_optimizer(torch.optim.SGD, whole, fused=True).param_groups[0]["fused"]


def test_a_cohort_trains_each_member_as_its_lone_run(compose, tmp_path):
    stages, data = _members(compose, tmp_path, "train.epochs=3", "optimizer=sgd")
    together = fit_cohort(stages, data, [None] * len(stages))
    for stage, (splits, train), cohort_result in zip(stages, data, together):
        alone = fit_stage(stage, splits, train, tmp_path / f"alone-{stage.run.id}")
        assert cohort_result.status == alone.status == "completed"
        assert cohort_result.best_epoch == alone.best_epoch
        for mine, theirs in zip(cohort_result.val_curve, alone.val_curve, strict=True):
            assert mine["nll"] == pytest.approx(theirs["nll"], abs=ATOL)
            assert mine["acc"] == pytest.approx(theirs["acc"], abs=1 / alone.val_examples + 1e-9)
        assert cohort_result.test["nll"] == pytest.approx(alone.test["nll"], abs=ATOL)


@pytest.mark.parametrize("depth", [3, 5])
def test_frozen_members_train_on_their_own_prefix_outputs_as_alone(
    compose, tmp_path, depth, caplog
):
    """With frozen depth groups each member's prefix (its own weights) runs once, as in its
    lone run, and the members' results are the lone runs'."""
    files = []
    for seed in (0, 1):  # a source per seed, as a study's sources are
        torch.manual_seed(seed)
        model = timm.create_model("test_resnet", num_classes=10)
        files.append(tmp_path / f"source{seed}.safetensors")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(files[-1]))
    stages = [
        _with_run_info(target, run_id(target), tmp_path / "runs" / run_id(target))
        for seed, lr in MEMBERS
        for target in [
            stage_configs(
                compose(
                    "init=file", f"init_path={files[seed]}", f"freeze_depth={depth}",
                    f"seed={seed}", f"train.lr={lr * 10}", "threads=1", "logger=[csv]",
                    "train.epochs=3", "optimizer=sgd",
                )
            )[1]
        ]
    ]  # fmt: skip
    data = [_training_data(stage) for stage in stages]
    with caplog.at_level(logging.INFO, logger="transferlab.training.frozen_features"):
        together = fit_cohort(stages, data, [None] * len(stages))
    assert caplog.text.count("frozen prefix computed once") == len(stages)
    for stage, (splits, train), cohort_result in zip(stages, data, together):
        alone = fit_stage(stage, splits, train, tmp_path / f"alone-{stage.run.id}")
        assert cohort_result.status == alone.status == "completed"
        assert cohort_result.trainable_parameters == alone.trainable_parameters
        assert cohort_result.best_epoch == alone.best_epoch
        for mine, theirs in zip(cohort_result.val_curve, alone.val_curve, strict=True):
            assert mine["nll"] == pytest.approx(theirs["nll"], abs=ATOL)
        assert cohort_result.test["nll"] == pytest.approx(alone.test["nll"], abs=ATOL)
        assert cohort_result.test["acc"] == pytest.approx(alone.test["acc"], abs=2e-3)


def test_what_cannot_be_vectorised_is_named(compose, tmp_path):
    plain = _stage(compose, tmp_path, 0, 0.01)
    splits, _ = _training_data(plain)
    assert why_alone(build_module(plain, splits, None)[0]) is None
    assert why_alone(build_module(plain, splits, None)[0], devices=2) == "2 devices"
    restarts = build_module(plain, splits, None)[0]
    restarts.spans.append(restarts.spans[0])  # a second optimiser, as LP-FT's
    assert why_alone(restarts) == "method finetune restarts its optimiser"
    for kwargs in ("+model.kwargs.drop_rate=0.1", "+model.kwargs.drop_path_rate=0.1"):
        random = build_module(_stage(compose, tmp_path, 0, 0.01, kwargs), splits, None)[0]
        assert "draws random numbers in training" in why_alone(random)


def _run_cfgs(compose, *extra: str, members=MEMBERS):
    return [
        compose("init=scratch", f"seed={s}", f"train.lr={lr}", "threads=1", "logger=[csv]", *extra)
        for s, lr in members
    ]


def test_train_cohort_writes_each_members_record_and_logs_and_resumes_none(compose, tmp_path):
    from transferlab.store.schema import record_problem
    from transferlab.training.cohort_run import train_cohort
    from transferlab.training.run import train

    cfgs = _run_cfgs(compose, "optimizer=sgd", "save_weights=true")
    records = train_cohort(cfgs)
    ids = [run_id(stage_configs(cfg)[1]) for cfg in cfgs]
    assert [r["run_id"] for r in records] == ids and len(set(ids)) == len(MEMBERS)
    for record in records:
        assert record["status"] == "completed" and record["cohort"] == len(MEMBERS)
        assert record_problem(record) is None
        assert record["started_at"] < record["finished_at"] and record["train_samples_per_s"] > 0
        assert (tmp_path / "results" / record["checkpoint"]).is_file()  # save_weights=true
        metrics = tmp_path / "results" / "default" / "runs" / record["run_id"] / "csv"
        (csv_file,) = metrics.rglob("metrics.csv")
        rows = list(csv.DictReader(csv_file.open()))
        # each epoch at the step a lone run logs it at (10 batches an epoch: 9, 19), the test
        # after the fit (step 20), as tests/test_resume.py pins them for a lone run
        assert [(r["epoch"], r["step"]) for r in rows if r["val/acc"]] == [("0", "9"), ("1", "19")]
        assert [(r["epoch"], r["step"]) for r in rows if r["test/acc"]] == [("2", "20")]
    again = train_cohort(cfgs)  # a re-launch trains nothing
    assert all(r.get("skipped") for r in again)
    lone = train(
        _run_cfgs(compose, "optimizer=sgd", "save_weights=true", "force=true", members=MEMBERS[:1])[
            0
        ]
    )
    assert lone["run_id"] == ids[0] and lone["cohort"] is None
    assert lone["metrics"]["test"]["nll"] == pytest.approx(
        records[0]["metrics"]["test"]["nll"], abs=ATOL
    )


def test_a_diverged_member_is_recorded_and_the_others_go_on(compose, tmp_path):
    from transferlab.training.cohort_run import train_cohort

    members = [(0, 0.01), (0, 1e12), (1, 0.003)]  # 1e12: its loss overflows at once
    records = train_cohort(_run_cfgs(compose, "optimizer=sgd", members=members))
    assert [r["status"] for r in records] == ["completed", "diverged", "completed"]
    assert "non-finite" in records[1]["error"]
    assert all(r["cohort"] == len(members) for r in records)


def test_a_multirun_trains_cohorts_with_one_record_and_progress_line_per_run(tmp_path):
    """`transferlab-run -m ... cohort=true` through the real sweeper, basic launcher: the plan
    groups the runs that differ only in seed and lr (one cohort per augmentation here), each run
    gets its own record, run id and progress line, and a re-launch trains nothing."""
    import json
    import os

    from helpers.entry import run_entry

    results = tmp_path / "results"
    args = [
        "-m", "hydra/launcher=basic", "cohort=true", "optimizer=sgd", "init=scratch",
        "model=test_resnet", "image_size=16", "target_size=50", "train.epochs=2",
        "seed=0,1", "train.lr=0.01,0.003", "augment=none,flip_crop", "logger=[csv]",
        f"paths.results={results}", "study=cohorts", "threads=1",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline"}
    done = run_entry(args, env, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "cohorts: 8 runs in 2 cohorts" in output
    records = [json.loads(p.read_text()) for p in (results / "cohorts" / "records").glob("*.json")]
    assert len(records) == 8 and {r["cohort"] for r in records} == {4}
    assert {(r["seed"], r["lr"]) for r in records} == set(itertools.product((0, 1), (0.01, 0.003)))
    assert output.count(" completed run ") == 8 and "[8/8]" in output
    again = run_entry(args, env, tmp_path)
    assert again.returncode == 0 and "0 to run, 8 done before" in again.stdout + again.stderr


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ([], None),
        (["init=source", "method=lp_ft"], "method lp_ft restarts its optimiser"),
        (["init=source", "method=l2sp"], "method l2sp adds a penalty"),
        (["init=source", "method=dann"], "adaptation method"),
        (["+model.kwargs.drop_path_rate=0.1"], "draws random numbers in training"),
        (["callbacks.selection.mode=min", "callbacks.selection.monitor=val/nll"], "val/nll"),
        (["trainer.precision=16-mixed"], "one loss scale for every member"),
        (["+trainer.max_steps=5"], "counted per optimiser step"),
        (["+trainer.gradient_clip_val=1.0"], "trainer.gradient_clip_val=1.0"),
        (["+trainer.accumulate_grad_batches=2"], "trainer.accumulate_grad_batches=2"),
        (["trainer=ddp", "trainer.accelerator=cpu"], "more than one device"),
        (  # a cohort's trainer would not run it: the member would train all its epochs
            [
                "+callbacks.stop={_target_: lightning.pytorch.callbacks.EarlyStopping,"
                "monitor: val/acc, mode: max, patience: 0}"
            ],
            "callbacks stop",
        ),
    ],
)
def test_the_plan_says_why_a_run_trains_alone(compose, overrides, why):
    from transferlab.sweep.cohorts import cohort_fields

    fields = cohort_fields(compose("cohort=true", "data@source=digits", *overrides))
    if why is None:
        assert fields["alone"] is None and fields["cohort_key"]
    else:
        assert why in fields["alone"] and fields["cohort_key"] is None


def test_runs_a_cohort_cannot_vectorise_train_alone_each_with_its_record(compose, tmp_path):
    from transferlab.training.cohort_run import train_cohort

    members = [(0, 0.003), (1, 0.003)]
    cfgs = _run_cfgs(compose, "+model.kwargs.drop_path_rate=0.1", members=members)
    records = train_cohort(cfgs)
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert [r["cohort"] for r in records] == [None, None]  # trained alone, as the log says
    assert [r["seed"] for r in records] == [0, 1]


def test_a_malformed_member_list_is_one_line(compose):
    from transferlab.errors import ConfigError
    from transferlab.sweep.cohorts import member_configs

    with pytest.raises(ConfigError) as err:
        member_configs(compose("cohort_members=[[0]]"))
    assert "must be a list of [seed, lr] pairs" in str(err.value) and "\n" not in str(err.value)
    members = member_configs(compose("cohort_members=[[0,0.01],[1,0.003]]"))
    assert [(m.seed, m.train.lr, m.cohort_members) for m in members] == [
        (0, 0.01, None),
        (1, 0.003, None),
    ]


@pytest.mark.parametrize("lr", ["1", "1.0", "0.003"])
def test_a_members_run_id_is_its_lone_runs_whatever_the_lr_is_written_as(compose, lr):
    # The identity hashes the value's type: train.lr=1 and train.lr=1.0 are two runs, and a
    # member must be the run the plan found (else the plan never sees it done).
    from transferlab.store import run_id, stage_config
    from transferlab.sweep.cohorts import cohort_fields, member_configs

    lone = compose("cohort=true", "init=scratch", "seed=3", f"train.lr={lr}")
    seed, plan_lr = cohort_fields(lone)["member"]
    (member,) = member_configs(compose(f"cohort_members=[[{seed},{plan_lr!r}]]", "init=scratch"))
    assert run_id(stage_config(member, "target")) == run_id(stage_config(lone, "target"))


def test_a_run_given_twice_trains_once_and_both_get_its_record(compose):
    from transferlab.training.cohort_run import train_cohort

    members = [(0, 0.003), (0, 0.003), (1, 0.003)]
    records = train_cohort(_run_cfgs(compose, "optimizer=sgd", members=members))
    assert records[0] is records[1] and records[0]["status"] == "completed"
    assert records[0]["cohort"] == 2 and records[2]["run_id"] != records[0]["run_id"]


@pytest.mark.parametrize(
    ("sizes", "workers", "expected"),
    [
        ([6], 2, [3, 3]),  # one cohort, two workers: each gets half of it
        ([6, 1], 2, [6, 1]),  # a lone run fills the second worker
        ([4, 3], 8, [1, 1, 1, 1, 1, 1, 1]),  # never a part of nothing
        ([5, 5], 2, [5, 5]),
    ],
)
def test_cohorts_are_split_until_every_worker_has_a_job(sizes, workers, expected):
    from transferlab.sweep.cohorts import MEMBERS_KEY, group_jobs

    entries, jobs = [], []
    for key, size in enumerate(sizes):
        for seed in range(size):
            entries.append({"cohort_key": f"k{key}" if size > 1 else None, "member": [seed, 0.1]})
            jobs.append([f"group={key}", f"seed={seed}", "train.lr=0.1"])
    launch, _ = group_jobs(jobs, entries, workers)
    members = [job[-1].count("[") - 1 if job[-1].startswith(MEMBERS_KEY) else 1 for job in launch]
    assert members == expected
    runs = set()
    for job in launch:  # every run is launched once
        group = job[0]
        if job[-1].startswith(MEMBERS_KEY):
            pairs = job[-1].split("=", 1)[1]
            runs |= {(group, s) for s in pairs.replace("[", "").replace("]", "").split(",")[::2]}
        else:
            runs.add((group, job[1].split("=")[1]))
    assert len(runs) == sum(sizes)
