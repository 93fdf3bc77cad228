"""Simulated studies with planted transfer gains, as records in the exact schema
(`transferlab.store.schema.RunRecord`, with identities shaped as real runs write them).

Used by the validity tests (planted effects must be recovered, null studies must not be flagged
more often than the nominal level) and by the speed benchmark.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.store.identity import identity_hash
from transferlab.store.schema import IDENTITY_VERSION, RunRecord

#: Scratch accuracy curve: CEILING - SPAN * (n / N0) ** -0.5, clipped to [CHANCE_FLOOR, 1].
SCRATCH_CEILING = 0.95
SCRATCH_SPAN = 0.6
SCRATCH_N0 = 20
#: Size of the whole training pool, used for target_size None.
POOL_SIZE = 1000
#: Epoch time constants of the simulated validation curves (fine-tuning converges faster).
SCRATCH_TAU = 3.0
FINETUNE_TAU = 1.5
#: Metrics that are not simulated but written so the schema is complete.
NLL_SCALE = 2.0
BATCH_SIZE = 64

GainFn = Callable[[str, str, str, "int | None", int], float]


def _default_sources() -> dict[str, float]:
    return {"clean": 0.10, "permuted": -0.10}


@dataclass(frozen=True)
class SimulatedStudy:
    """What to simulate: the grid, the planted gains and the noise.

    ``sources`` maps each source to its planted gain (test-accuracy difference to scratch);
    ``gain`` (model, source, target, target_size, freeze_depth) -> gain overrides it per cell.
    ``specs`` maps dataset names to the dataset specs written in the records (default
    ``{"name": name}``), e.g. built-in datasets so the shift analysis can load them.
    Each arm has its own best learning rate (scratch: the largest, fine-tuning: the smallest);
    the others lose ``lr_penalty`` of accuracy on validation and test alike.
    """

    study: str = "sim"
    models: tuple[str, ...] = ("resnet18",)
    sources: Mapping[str, float] = field(default_factory=_default_sources)
    targets: tuple[str, ...] = ("digits",)
    target_sizes: tuple[int | None, ...] = (20, 100, 500)
    freeze_depths: tuple[int, ...] = (0, 2)
    lrs: tuple[float, ...] = (1e-3, 1e-2)
    seeds: int = 6
    num_depth_groups: int = 4
    num_classes: int = 10
    epochs: int = 8
    noise_sd: float = 0.02
    seed_sd: float = 0.03
    lr_penalty: float = 0.05
    gain: GainFn | None = None
    fail_rate: float = 0.0
    diverge_rate: float = 0.0
    rng_seed: int = 0
    image_size: int = 32
    channels: int = 3
    specs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: extra identity settings of every run (e.g. {"optimizer._target_": "torch.optim.SGD"})
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: extra identity settings of every source stage and fine-tuned run (e.g. pretrain.lr)
    source_settings: Mapping[str, Any] = field(default_factory=dict)
    #: examples in the validation and test sets: accuracies are multiples of 1 / this, so
    #: runs tie as real ones do (None: continuous accuracies)
    eval_examples: int | None = None
    #: validation examples as a share of the target size (the budget protocol: 0.2 gives 4
    #: examples at a 20-example budget): validation accuracy is then a binomial count on
    #: that many examples, its NLL the continuous quality behind it (None: as test)
    val_share: float | None = None

    def planted_gain(
        self, model: str, source: str, target: str, size: int | None, depth: int
    ) -> float:
        """The true gain of a cell."""
        if self.gain is not None:
            return float(self.gain(model, source, target, size, depth))
        return float(self.sources[source])


def scratch_accuracy(size: int | None, num_classes: int) -> float:
    """True test accuracy of the best scratch run at a target size (a saturating curve)."""
    n = POOL_SIZE if size is None else size
    acc = SCRATCH_CEILING - SCRATCH_SPAN * math.sqrt(SCRATCH_N0 / n)
    return float(min(1.0, max(1.0 / num_classes, acc)))


def _identity(
    s: SimulatedStudy,
    stage: str,
    init: str,
    model: str,
    source: str | None,
    target: str,
    size: int | None,
    depth: int,
    lr: float,
    seed: int,
) -> dict[str, Any]:
    """An identity shaped like a real run's (see transferlab.store.identity)."""
    budget = "pretrain" if stage == "source" else "train"
    ident: dict[str, Any] = {
        "stage": stage,
        "identity_version": IDENTITY_VERSION,
        "model.name": model,
        "image_size": s.image_size,
        "channels": s.channels,
        "split_seed": 0,
        "seed": seed,
        "optimizer._target_": "torch.optim.AdamW",
        f"{budget}.lr": lr,
        f"{budget}.epochs": s.epochs,
        f"{budget}.batch_size": BATCH_SIZE,
        f"{budget}.weight_decay": 0.0,
        **s.settings,
    }
    if stage == "target":
        ident.update({"init": init, "target.name": target, "target_size": size})
        if init != "scratch":
            ident["freeze_depth"] = depth
    if source is not None:
        ident.update({"source.name": source, "source_size": None, **s.source_settings})
    return ident


def _curve(final: float, tau: float, epochs: int, chance: float) -> list[dict[str, float]]:
    out = []
    for epoch in range(epochs):
        acc = chance + (final - chance) * (1.0 - math.exp(-(epoch + 1) / tau))
        out.append(
            {
                "epoch": epoch,
                "acc": acc,
                "f1": acc,
                "precision": acc,
                "recall": acc,
                "ece": 0.05,
                "nll": NLL_SCALE * (1.0 - acc),
            }
        )
    # the selected epoch is the best one, so the last value is the recorded validation accuracy
    out[-1] = {**out[-1], "acc": final, "f1": final, "precision": final, "recall": final}
    return out


def _metrics(acc: float) -> dict[str, float]:
    return {
        "acc": acc,
        "f1": acc,
        "precision": acc,
        "recall": acc,
        "ece": 0.05,
        "nll": NLL_SCALE * (1.0 - acc),
    }


def _dataset(name: str, specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    spec = dict(specs.get(name, {"name": name}))
    return {"name": spec["name"], "description": name, "spec": spec}


class _Simulator:
    def __init__(self, spec: SimulatedStudy) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.rng_seed)
        self.seed_effects: dict[tuple, float] = {}

    def seed_effect(self, model: str, target: str, size: int | None, seed: int) -> float:
        key = (model, target, size, seed)
        if key not in self.seed_effects:
            self.seed_effects[key] = float(self.rng.normal(0.0, self.spec.seed_sd))
        return self.seed_effects[key]

    def observed(self, true_acc: float) -> float:
        """An accuracy as measured: noisy, in [0, 1], on `eval_examples` examples if set."""
        acc = float(np.clip(true_acc + self.rng.normal(0.0, self.spec.noise_sd), 0.0, 1.0))
        if self.spec.eval_examples:
            acc = round(acc * self.spec.eval_examples) / self.spec.eval_examples
        return acc

    def validated(self, true_acc: float, size: int | None) -> tuple[float, float]:
        """Validation accuracy and NLL: as `observed`, or with `val_share` a binomial count
        on the budget's few validation examples, drawn independently of the test noise."""
        s = self.spec
        if s.val_share is None:
            acc = self.observed(true_acc)
            return acc, NLL_SCALE * (1.0 - acc)
        n = max(1, round((POOL_SIZE if size is None else size) * s.val_share))
        quality = float(np.clip(true_acc + self.rng.normal(0.0, s.noise_sd), 0.0, 1.0))
        return float(self.rng.binomial(n, quality)) / n, NLL_SCALE * (1.0 - quality)

    def record(
        self,
        *,
        model: str,
        stage: str,
        init: str,
        source: str | None,
        target: str,
        size: int | None,
        depth: int,
        lr: float,
        seed: int,
        true_acc: float,
        tau: float,
        source_run: str | None = None,
    ) -> dict[str, Any]:
        s = self.spec
        chance = 1.0 / s.num_classes
        if stage == "source":  # a source stage trains on the source: `target` names it here
            source, target = target, None
        ident = _identity(s, stage, init, model, source, target, size, depth, lr, seed)
        draw = self.rng.random()
        status = "completed"
        if draw < s.fail_rate:
            status = "failed"
        elif draw < s.fail_rate + s.diverge_rate:
            status = "diverged"
        val, val_nll = self.validated(true_acc, size if stage == "target" else None)
        test = self.observed(true_acc)
        ok = status == "completed"
        run_id = identity_hash(ident)
        record = RunRecord(
            run_id=run_id,
            study=s.study,
            stage=stage,
            status=status,
            error=None if ok else ("loss is NaN" if status == "diverged" else "RuntimeError"),
            init=init,
            model=model,
            freeze_depth=depth,
            method="finetune" if stage == "target" and init != "scratch" else None,
            source=None if source is None else _dataset(source, s.specs),
            target=None if target is None else _dataset(target, s.specs),
            source_size=None,
            target_size=size if stage == "target" else None,
            lr=lr,
            weight_decay=0.0,
            epochs=s.epochs,
            batch_size=BATCH_SIZE,
            seed=seed,
            split_seed=0,
            val_protocol=s.settings.get("val_protocol", "budget") if stage == "target" else "pool",
            source_run_id=source_run,
            source_checkpoint=None
            if source_run is None
            else f"cache/sources/{source_run}/model.pt",
            versions={"python": "3", "torch": "2", "transferlab": "0.1.0"},
            git_commit=None,
            identity=ident,
            config={"stage": stage, "image_size": s.image_size, "channels": s.channels},
            started_at="2025-01-01T00:00:00+00:00",
            finished_at="2025-01-01T00:00:01+00:00",
            wall_time_s=1.0,
            num_depth_groups=s.num_depth_groups,
            train_examples=POOL_SIZE if size is None else size,
            num_classes=s.num_classes,
            metrics={"val": {**_metrics(val), "nll": val_nll}, "test": _metrics(test)}
            if ok
            else {},
            best_epoch=s.epochs - 1 if ok else None,
            val_curve=_curve(val, tau, s.epochs, chance) if ok else [],
            train_samples_per_s=1000.0,
            checkpoint=f"cache/sources/{run_id}/model.pt" if stage == "source" else None,
        )
        return record.to_dict()


def simulate_records(spec: SimulatedStudy | None = None) -> list[dict[str, Any]]:
    """All records of a simulated study: source stages, scratch and fine-tuned target runs."""
    spec = spec or SimulatedStudy()
    sim = _Simulator(spec)
    out: list[dict[str, Any]] = []
    best_scratch_lr, best_ft_lr = max(spec.lrs), min(spec.lrs)
    for model in spec.models:
        sources = {}
        for source in spec.sources:
            rec = sim.record(
                model=model,
                stage="source",
                init="scratch",
                source=None,
                target=source,
                size=None,
                depth=0,
                lr=best_scratch_lr,
                seed=0,
                true_acc=SCRATCH_CEILING,
                tau=SCRATCH_TAU,
            )
            sources[source] = rec["run_id"]
            out.append(rec)
        for target in spec.targets:
            for size in spec.target_sizes:
                base = scratch_accuracy(size, spec.num_classes)
                for seed in range(spec.seeds):
                    shared = sim.seed_effect(model, target, size, seed)
                    for lr in spec.lrs:
                        pen = 0.0 if lr == best_scratch_lr else spec.lr_penalty
                        out.append(
                            sim.record(
                                model=model,
                                stage="target",
                                init="scratch",
                                source=None,
                                target=target,
                                size=size,
                                depth=0,
                                lr=lr,
                                seed=seed,
                                true_acc=base + shared - pen,
                                tau=SCRATCH_TAU,
                            )
                        )
                    for source, source_run in sources.items():
                        for depth in spec.freeze_depths:
                            gain = spec.planted_gain(model, source, target, size, depth)
                            for lr in spec.lrs:
                                pen = 0.0 if lr == best_ft_lr else spec.lr_penalty
                                out.append(
                                    sim.record(
                                        model=model,
                                        stage="target",
                                        init="source",
                                        source=source,
                                        target=target,
                                        size=size,
                                        depth=depth,
                                        lr=lr,
                                        seed=seed,
                                        true_acc=base + shared + gain - pen,
                                        tau=FINETUNE_TAU,
                                        source_run=source_run,
                                    )
                                )
    return out


def write_records(records: list[dict[str, Any]], results_root: str | Path) -> Path:
    """Write records as <results_root>/<study>/records/<run_id>.json; returns the study folder."""
    root = Path(results_root)
    study_dirs = set()
    for record in records:
        folder = root / record["study"] / "records"
        if folder not in study_dirs:
            folder.mkdir(parents=True, exist_ok=True)
            study_dirs.add(folder)
        (folder / f"{record['run_id']}.json").write_text(
            json.dumps(record, indent=1, sort_keys=True)
        )
    return next(iter(study_dirs)).parent if len(study_dirs) == 1 else root


def lone_effect_study(effect: float, *, seeds: int = 10, rng_seed: int = 0) -> SimulatedStudy:
    """36 cells (3 sources x 3 target sizes x 4 freeze depths), one learning rate, accuracies
    on 300 test examples (ties), and a single cell (`near`, 20 examples, depth 0) with a planted
    gain of `effect` paired-difference SDs; every other cell is null."""
    noise_sd = 0.02
    shift = effect * noise_sd * math.sqrt(2)  # the SD of a paired difference

    def gain(model: str, source: str, target: str, size: int | None, depth: int) -> float:
        return shift if (source, size, depth) == ("near", 20, 0) else 0.0

    return SimulatedStudy(
        study="power",
        sources={"near": 0.0, "far": 0.0, "other": 0.0},
        target_sizes=(20, 100, 500),
        freeze_depths=(0, 1, 2, 3),
        lrs=(1e-3,),
        seeds=seeds,
        noise_sd=noise_sd,
        gain=gain,
        eval_examples=300,
        rng_seed=rng_seed,
    )
