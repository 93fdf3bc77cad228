"""Class-stratified splitting: fixed held-out fractions and nested target subsamples."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from transferlab.data.image_ops import generator
from transferlab.errors import ConfigError

#: Fraction of the training pool held out for validation unless the spec sets ``val_fraction``.
DEFAULT_VAL_FRACTION = 0.2
#: Fraction held out for testing, for datasets without an official test split.
DEFAULT_TEST_FRACTION = 0.2
#: Examples per class a labelled budget needs before one can be held out for validation.
MIN_PER_CLASS_TO_SPLIT = 2


def stratified_holdout(
    labels: torch.Tensor, fraction: float, seed: int, tag: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split positions into (kept, held out), holding out ``round(fraction * n_c)`` of each class.

    Fixed by ``seed`` and ``tag``; a class with at least two examples keeps one and gives one.
    Both index tensors are sorted.
    """
    gen = generator("holdout", tag, seed)
    held: list[torch.Tensor] = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        n = len(members)
        k = round(fraction * n)
        if n >= 2:
            k = min(max(k, 1), n - 1)
        members = members[torch.randperm(n, generator=gen)]
        held.append(members[:k])
    out = torch.cat(held) if held else torch.empty(0, dtype=torch.long)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[out] = True
    return torch.nonzero(~mask).flatten(), torch.nonzero(mask).flatten()


def _class_name(classes: Sequence[str] | None, c: int) -> str:
    return classes[c] if classes is not None and 0 <= c < len(classes) else str(c)


def stratified_subset(
    labels: torch.Tensor,
    size: int | None,
    seed: int,
    *,
    classes: Sequence[str] | None = None,
    dataset: str | None = None,
) -> torch.Tensor:
    """Sorted indices of a class-balanced subsample of ``size`` examples (None = all).

    Each class gets ``size // k`` or one more; for a fixed seed the per-class order is fixed,
    so smaller subsets are nested in larger ones. ``classes`` (names, whose length fixes k)
    and ``dataset`` only improve error messages. ConfigError if the pool cannot supply it.
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    n = len(labels)
    if size is None:
        return torch.arange(n)
    where = f"the training pool of {dataset}" if dataset else "the training pool"
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"target size must be a positive integer or null, got {size!r}")
    if size > n:
        raise ConfigError(f"target size {size} exceeds the {n} examples in {where}")
    present = torch.unique(labels).tolist()
    class_ids = list(range(len(classes))) if classes is not None else present
    k = len(class_ids)
    if size < k:
        raise ConfigError(f"target size {size} is smaller than the {k} classes of {where}")
    quota, extra = divmod(size, k)
    need = quota + (1 if extra else 0)
    counts = {c: int((labels == c).sum()) for c in class_ids}
    for c in class_ids:
        if counts[c] < need:
            per = f"{quota}" if not extra else f"{quota}-{quota + 1}"
            raise ConfigError(
                f"target size {size} needs {per} per class but class "
                f"'{_class_name(classes, c)}' has {counts[c]} in {where}"
            )
    return torch.sort(torch.cat(_class_draws(labels, class_ids, quota, extra, seed))).values


def unlabelled_subset(
    n: int, size: int | None, seed: int, *, dataset: str | None = None
) -> torch.Tensor:
    """Sorted indices of ``size`` of ``n`` examples drawn without reading a label (None = all):
    what a source trained without labels takes, so its labels cannot change its examples.
    A fixed seeded order, so smaller subsets are nested in larger ones."""
    if size is None:
        return torch.arange(n)
    where = f"the training pool of {dataset}" if dataset else "the training pool"
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"source size must be a positive integer or null, got {size!r}")
    if size > n:
        raise ConfigError(f"source size {size} exceeds the {n} examples in {where}")
    order = torch.randperm(n, generator=generator("unlabelled subset", seed))
    return torch.sort(order[:size]).values


def _class_draws(
    labels: torch.Tensor, class_ids: Sequence[int], quota: int, extra: int, seed: int
) -> list[torch.Tensor]:
    """Each class's draw, in its seeded order: the first ``quota`` (or one more) members of a
    fixed per-class permutation, so a larger size only adds examples (nesting)."""
    # Which classes get one of the `extra` examples: a seeded class order, fixed per seed, so
    # per-class counts only grow with size (nesting).
    gen = generator("subset", seed)
    k = len(class_ids)
    rank = torch.empty(k, dtype=torch.long)
    rank[torch.randperm(k, generator=gen)] = torch.arange(k)
    chosen = []
    for i, c in enumerate(class_ids):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator("subset", seed, c))]
        chosen.append(members[: quota + (1 if rank[i] < extra else 0)])
    return chosen


def budget_split(
    labels: torch.Tensor,
    size: int | None,
    seed: int,
    share: float,
    *,
    classes: Sequence[str] | None = None,
    dataset: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) indices that share the labelled budget of `stratified_subset`
    (together they are exactly that subset): each class gives ``round(share * n_c)`` of its
    draw, at least one and never all, to validation. Whether an example validates depends on
    its place in its class's draw only (`_validates`), so validation and training are both
    nested across sizes, as the subsets are. ConfigError when a class has fewer than two
    examples in the budget (nothing to hold out)."""
    budget = stratified_subset(labels, size, seed, classes=classes, dataset=dataset)
    labels = torch.as_tensor(labels, dtype=torch.long)
    class_ids = list(range(len(classes))) if classes is not None else torch.unique(labels).tolist()
    k, n = len(class_ids), len(budget)
    quota, extra = divmod(n, k)
    fewest = min(int((labels == c).sum()) for c in class_ids) if size is None else quota
    if fewest < MIN_PER_CLASS_TO_SPLIT:
        raise ConfigError(
            f"val_protocol=budget holds validation examples out of the labelled budget, which "
            f"needs at least {MIN_PER_CLASS_TO_SPLIT} per class: target size >= "
            f"{MIN_PER_CLASS_TO_SPLIT * k} for {k} classes (got {n}); or use val_protocol=pool"
        )
    if size is None:  # the whole pool is the budget: every member, in the subsets' order
        quota, extra = max(int((labels == c).sum()) for c in class_ids), 0
    train, val = [], []
    for draw in _class_draws(labels, class_ids, quota, extra, seed):
        held = _validates(len(draw), share)
        val.append(draw[held])
        train.append(draw[~held])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(val)).values


def _held_count(n: int, share: float) -> int:
    """How many of a class's first `n` drawn examples validate: round(share * n), at least one
    and never all (none of a single example)."""
    return min(max(round(share * n), 1), n - 1) if n > 1 else 0


def _validates(n: int, share: float) -> torch.Tensor:
    """Which of a class's first `n` drawn examples validate: place i does when the count
    grows there. The count grows by at most one per example, so the first n' < n places are
    split exactly as a draw of n' would be: validation and training both nest."""
    counts = torch.tensor([_held_count(i, share) for i in range(n + 1)])
    return counts[1:] > counts[:-1]
