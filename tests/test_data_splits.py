"""Fixed stratified splits, nested target subsets, and base-index disjointness across views."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from transferlab.data import (
    DatasetSplits,
    ImageTensors,
    build_splits,
    clear_cache,
    stratified_subset,
)
from transferlab.errors import ConfigError

SIZE = 8
ROT45 = {"name": "digits", "shifts": [{"name": "rotate", "degrees": 45}]}


def digits(split_seed: int = 0, **options: object) -> DatasetSplits:
    return build_splits({"name": "digits", **options}, image_size=SIZE, split_seed=split_seed)


def origins(part: ImageTensors) -> set[int]:
    return set(part.origin.tolist())


def test_train_val_test_partition_the_base_dataset() -> None:
    splits = digits()
    train, val, test = origins(splits.train), origins(splits.val), origins(splits.test)
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(1797))
    assert splits.official_test_offset is None
    assert (splits.num_classes, splits.channels, splits.image_size) == (10, 3, SIZE)


def test_holdouts_are_class_stratified_fractions() -> None:
    splits = digits()
    whole = Counter(splits.train.labels.tolist() + splits.val.labels.tolist()
                    + splits.test.labels.tolist())  # fmt: skip
    test = Counter(splits.test.labels.tolist())
    for c, n in whole.items():
        assert test[c] == round(0.2 * n)
    pool = Counter(splits.train.labels.tolist()) + Counter(splits.val.labels.tolist())
    val = Counter(splits.val.labels.tolist())
    for c, n in pool.items():
        assert val[c] == round(0.2 * n)
    smaller = digits(val_fraction=0.1, test_fraction=0.3)
    assert len(smaller.test) == pytest.approx(0.3 * 1797, abs=10)


def test_splits_are_fixed_by_split_seed_only() -> None:
    first = digits(split_seed=0)
    clear_cache()
    again = digits(split_seed=0)
    assert torch.equal(first.test.origin, again.test.origin)
    assert torch.equal(first.val.origin, again.val.origin)
    assert torch.equal(first.train.images, again.train.images)
    other = digits(split_seed=1)
    assert not torch.equal(first.test.origin, other.test.origin)
    assert not torch.equal(first.val.origin, other.val.origin)


def test_the_cache_returns_the_same_splits_object() -> None:
    assert digits() is digits()
    assert digits() is build_splits({"name": "digits", "shifts": []}, image_size=SIZE)


def test_shifted_views_share_the_base_split_so_source_never_sees_target_test() -> None:
    target = digits()
    source = build_splits(ROT45, image_size=SIZE)
    # both views hold the same whole training pool (a run's stages split it into a source
    # and a target part: tests/test_data_pools.py) ...
    assert torch.equal(source.train.origin, target.train.origin)
    # ... so no source training (or validation) example is a target test example
    assert not origins(source.train) & origins(target.test)
    assert not origins(source.val) & origins(target.test)
    # and the target's own run-seeded subset stays inside the shared pool
    subset = target.train.subset(stratified_subset(target.train.labels, 100, seed=3))
    assert not origins(subset) & origins(source.test)


def test_subset_is_balanced_within_one_per_class() -> None:
    labels = digits().train.labels
    for size in (10, 55, 99, 200):
        idx = stratified_subset(labels, size, seed=0)
        assert len(idx) == size == len(set(idx.tolist()))
        counts = Counter(labels[idx].tolist())
        assert set(counts) == set(range(10))
        assert max(counts.values()) - min(counts.values()) <= 1


def test_subsets_are_nested_across_sizes_and_seeded() -> None:
    labels = digits().train.labels
    sets = [set(stratified_subset(labels, n, seed=7).tolist()) for n in (10, 50, 77, 200, 500)]
    for small, large in zip(sets, sets[1:]):
        assert small < large
    assert torch.equal(stratified_subset(labels, 50, seed=7), stratified_subset(labels, 50, 7))
    assert not torch.equal(stratified_subset(labels, 50, 7), stratified_subset(labels, 50, 8))
    assert torch.equal(stratified_subset(labels, None, seed=7), torch.arange(len(labels)))


def test_target_subset_does_not_move_the_test_set() -> None:
    splits = digits()
    test_before = splits.test.origin.clone()
    for seed in (0, 1, 2):
        stratified_subset(splits.train.labels, 50, seed)
        assert torch.equal(digits().test.origin, test_before)


def test_subset_size_errors_are_one_line_and_specific() -> None:
    splits = digits()
    labels = splits.train.labels
    with pytest.raises(ConfigError, match=r"target size 5000 exceeds the \d+ examples"):
        stratified_subset(labels, 5000, 0)
    with pytest.raises(ConfigError, match="smaller than the 10 classes"):
        stratified_subset(labels, 5, 0)
    per_class = Counter(labels.tolist())
    poorest, have = min(per_class.items(), key=lambda kv: kv[1])
    with pytest.raises(ConfigError) as err:
        stratified_subset(labels, 10 * (have + 1), 0, classes=splits.classes, dataset="digits")
    msg = str(err.value)
    assert msg == (
        f"target size {10 * (have + 1)} needs {have + 1} per class but class "
        f"'{splits.classes[poorest]}' has {have} in the training pool of digits"
    )
    with pytest.raises(ConfigError, match="positive integer"):
        stratified_subset(labels, 0, 0)


def test_budget_validation_is_held_out_of_the_budget_disjoint_and_nested():
    from transferlab.data import budget_split

    labels = torch.arange(10).repeat_interleave(30)  # 10 classes x 30
    previous_val = previous_train = None
    for size in (20, 60, 200, None):  # None: the whole pool is the budget
        budget = stratified_subset(labels, size, seed=3)
        train, val = budget_split(labels, size, 3, 0.2)
        assert set(train.tolist()).isdisjoint(val.tolist())
        assert sorted([*train.tolist(), *val.tolist()]) == budget.tolist()  # the same budget
        drawn = torch.bincount(labels[budget], minlength=10).tolist()
        held = [min(max(round(0.2 * n), 1), n - 1) for n in drawn]  # per class, 1..n-1
        assert torch.bincount(labels[val], minlength=10).tolist() == held
        assert torch.bincount(labels[train], minlength=10).min() >= 1
        if previous_val is not None:  # both nested across sizes, as the subsets are
            assert set(previous_val.tolist()) <= set(val.tolist())
            assert set(previous_train.tolist()) <= set(train.tolist())
        previous_val, previous_train = val, train
    # another seed draws another split of another budget
    assert not torch.equal(budget_split(labels, 60, 4, 0.2)[1], budget_split(labels, 60, 3, 0.2)[1])


def test_budget_too_small_to_split_names_the_minimum():
    from transferlab.data import budget_split

    labels = torch.arange(10).repeat_interleave(30)
    with pytest.raises(ConfigError, match="target size >= 20 for 10 classes"):
        budget_split(labels, 15, 0, 0.2)
