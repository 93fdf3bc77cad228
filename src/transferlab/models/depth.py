"""Ordered depth groups (stem, blocks..., head) of any timm model, and freezing by depth.

"Stage" in this project means a training stage (source or target); a model's depth is split
into *depth groups*. Groups come from timm's own ``group_matcher(coarse=True)`` applied with
``timm.models._manipulate.group_with_matcher`` (the function behind ``group_parameters``):

* group 0 is the stem, the middle groups are timm's coarse block groups in order, and the last
  group is the head: every parameter the matcher does not match (the classifier, plus any neck
  that sits after the blocks, e.g. ConvNeXt's ``head.norm`` or ViT's ``fc_norm``/``attn_pool``).
* Trailing groups that timm marks ``(99999,)`` (``MATCH_PREV_GROUP``: the final ``norm`` of a
  ViT, ``conv_head``/``bn2`` of an EfficientNet, ``final_conv`` of a NFNet) are kept merged with
  the last block, exactly as timm does for layer-wise LR decay. A group holding only a final
  norm would give a freeze depth that differs from its neighbour by two parameters; merged, the
  linear probe (``num_depth_groups - 1``) freezes the whole backbone up to its pooled features.
* Should a model's matcher also match its classifier, the classifier is split off into its own
  head group, so that a linear probe always trains exactly the head. A model without a
  ``group_matcher`` gets two groups, ``body`` and ``head``.

Buffers are grouped with the same matcher, so a running-stat norm (BatchNorm, EvoNorm-B0, ...)
belongs to the group of its own ``running_*`` buffers even when it has no affine parameters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from torch import nn

from transferlab.errors import ConfigError

STEM_NAME = "stem"
HEAD_NAME = "head"
BODY_NAME = "body"
RUNNING_STAT_PREFIX = "running_"
#: a name no group_matcher pattern matches: it marks timm's "unmatched" (head) group
_UNMATCHED_SENTINEL = "\x00transferlab_unmatched"
#: group names shown in full in messages; longer lists are abbreviated to ``first..last``
_MAX_LISTED_NAMES = 3
_MAX_JOINED_PREFIXES = 3


def timm_group_with_matcher(names: list[str], matcher: dict | object) -> dict:
    """timm's grouping of names by a ``group_matcher`` (the function behind its
    ``group_parameters`` and layer-wise LR decay), wrapped here, the one place we import it.

    It is private to timm (``timm.models._manipulate``), so tests/test_models_timm_contract.py
    pins what we rely on: groups keyed by sorted ordinals, names no pattern matches in the
    largest ordinal group, and ``MATCH_PREV_GROUP`` groups merged into the previous one.
    """
    from timm.models._manipulate import group_with_matcher

    return group_with_matcher([(n, None) for n in names], matcher)


def depth_groups(model: nn.Module) -> list[tuple[str, list[str]]]:
    """Ordered ``(group_name, parameter_names)`` pairs: stem, blocks..., head.

    Every parameter of ``model`` appears in exactly one group; freeze depth k freezes the first k.
    """
    return [(name, params) for name, params, _ in _group_table(model)]


def num_depth_groups(model: nn.Module) -> int:
    """Number of depth groups of ``model`` (valid freeze depths are ``0..num_depth_groups-1``)."""
    return len(_group_table(model))


def group_summary(names: list[str]) -> str:
    """Compact group list for messages, e.g. ``stem, layer1..layer4, head``."""
    if len(names) <= 2 + _MAX_LISTED_NAMES:
        return ", ".join(names)
    return f"{names[0]}, {names[1]}..{names[-2]}, {names[-1]}"


def check_freeze_depth(model_name: str, depth: int, group_names: list[str]) -> None:
    """Raise a one-line ConfigError unless ``0 <= depth < len(group_names)``."""
    count = len(group_names)
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth < count:
        raise ConfigError(
            f"freeze_depth {depth} is out of range for {model_name}, which has {count} depth "
            f"groups ({group_summary(group_names)}); valid: 0..{count - 1}"
        )


def freeze_groups(model: nn.Module, depth: int) -> list[nn.Module]:
    """Freeze the parameters of the first ``depth`` depth groups and unfreeze the rest.

    Returns the running-stat modules (BatchNorm & co.) of the frozen groups: they must stay in
    eval mode, since ``requires_grad=False`` alone still lets train mode update their statistics.
    Idempotent: calling it again with another depth re-freezes from scratch.
    """
    names = [name for name, _, _ in _group_table(model)]
    check_freeze_depth(model_display_name(model), depth, names)
    return freeze_group_set(model, range(depth))


def freeze_group_set(model: nn.Module, frozen: Iterable[int]) -> list[nn.Module]:
    """Freeze the depth groups at the indices `frozen` (any subset), unfreeze the others, and
    return the frozen groups' running-stat modules (to keep in eval mode)."""
    table, frozen = _group_table(model), set(frozen)
    frozen_params = {p for i, (_, params, _) in enumerate(table) if i in frozen for p in params}
    for name, param in model.named_parameters():
        param.requires_grad_(name not in frozen_params)
    frozen_buffers = {b for i, (_, _, buffers) in enumerate(table) if i in frozen for b in buffers}
    return running_stat_modules(model, frozen_buffers)


def running_stat_modules(model: nn.Module, buffers: set[str]) -> list[nn.Module]:
    """The modules of `model` owning any of the running-statistics `buffers` (full names)."""
    return [
        module
        for module_name, module in model.named_modules()
        if any(
            _join(module_name, buf) in buffers
            for buf, _ in module.named_buffers(recurse=False)
            if buf.startswith(RUNNING_STAT_PREFIX)
        )
    ]


def keep_frozen_in_eval(modules: Iterable[nn.Module]) -> None:
    """Put the frozen running-stat modules back in eval mode; call after every ``model.train()``."""
    for module in modules:
        module.eval()


def model_display_name(model: nn.Module) -> str:
    """The timm architecture name of ``model`` (or its class name when it is not a timm model)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return str(cfg.get("architecture") or type(model).__name__)


def _group_table(model: nn.Module) -> list[tuple[str, list[str], list[str]]]:
    """``(name, parameter names, buffer names)`` per depth group, in depth order."""
    params = [name for name, _ in model.named_parameters()]
    buffers = [name for name, _ in model.named_buffers()]
    everything = params + buffers
    classifier = _classifier_params(model)
    matcher = _group_matcher(model)
    if matcher is None:
        if not classifier:  # a headless encoder without a matcher: one group
            return _finish([BODY_NAME], [everything], set(params))
        groups = [[n for n in everything if n not in classifier], sorted(classifier)]
        return _finish([BODY_NAME, HEAD_NAME], groups, set(params))
    sentinel = [_UNMATCHED_SENTINEL] if isinstance(matcher, dict) else []
    grouped = timm_group_with_matcher(everything + sentinel, matcher)
    groups = [list(grouped[k]) for k in sorted(grouped)]
    head = groups[-1]
    if sentinel:
        # timm maps unmatched names to the largest ordinal, so the sentinel marks the head group
        head = next(g for g in groups if _UNMATCHED_SENTINEL in g)
        head.remove(_UNMATCHED_SENTINEL)
    if not classifier <= set(head):
        # the matcher also matched the classifier: split it off so a linear probe trains only it
        groups = [[n for n in g if n not in classifier] for g in groups] + [sorted(classifier)]
    groups = _merge_paramless(groups, set(params))
    labels = _group_labels(groups)
    # a headless encoder (no classifier, nothing unmatched) keeps its last block's own name
    last = HEAD_NAME if classifier or head else labels[-1]
    return _finish(_unique([STEM_NAME, *labels[1:-1], last]), groups, set(params))


def _unique(names: list[str]) -> list[str]:
    """Suffix repeated group names with their index (a block module may be called ``head``)."""
    seen = {n for i, n in enumerate(names) if names.index(n) != i}
    return [f"{n}[{i}]" if n in seen and i < len(names) - 1 else n for i, n in enumerate(names)]


def _finish(
    names: list[str], groups: list[list[str]], params: set[str]
) -> list[tuple[str, list[str], list[str]]]:
    table = []
    for name, group in zip(names, groups):
        table.append(
            (name, [n for n in group if n in params], [n for n in group if n not in params])
        )
    return table


def _merge_paramless(groups: list[list[str]], params: set[str]) -> list[list[str]]:
    """Fold groups that hold only buffers into the next group (the previous one at the end)."""
    merged: list[list[str]] = []
    carry: list[str] = []
    for group in groups:
        group = carry + group
        carry = []
        if any(n in params for n in group):
            merged.append(group)
        else:
            carry = group
    if carry and merged:
        merged[-1].extend(carry)
    return [g for g in merged if g]


def _group_matcher(model: nn.Module) -> dict | object | None:
    """timm's coarse matcher; the fine one where coarse is not implemented (e.g. RDNet)."""
    fn = getattr(model, "group_matcher", None)
    for coarse in (True, False) if fn is not None else ():
        try:
            return fn(coarse=coarse)
        except (NotImplementedError, AssertionError, TypeError):
            continue
    return None


def _classifier_params(model: nn.Module) -> set[str]:
    """Full parameter names of the final classifier (``get_classifier()``), if any."""
    getter = getattr(model, "get_classifier", None)
    if getter is None:
        return set()
    try:
        classifier = getter()
    except (NotImplementedError, AttributeError):
        return set()
    modules = classifier if isinstance(classifier, tuple | list) else (classifier,)
    ids = {id(p) for m in modules if isinstance(m, nn.Module) for p in m.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def _group_labels(groups: list[list[str]]) -> list[str]:
    """Readable block names: the top modules each group owns, e.g. ``layer1``, ``blocks.5+norm``."""
    owners: dict[str, set[int]] = defaultdict(set)
    for index, group in enumerate(groups):
        for name in group:
            parts = name.split(".")
            for i in range(1, len(parts)):
                owners[".".join(parts[:i])].add(index)
    labels = []
    for index, group in enumerate(groups):
        prefixes: list[str] = []
        for name in group:
            parts = name.split(".")
            candidates = (".".join(parts[:i]) for i in range(1, len(parts)))
            prefix = next((p for p in candidates if owners[p] == {index}), name)
            if prefix not in prefixes:
                prefixes.append(prefix)
        if len(prefixes) > _MAX_JOINED_PREFIXES:
            prefixes = [*prefixes[:_MAX_JOINED_PREFIXES], "..."]
        labels.append("+".join(prefixes))
    return labels


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def trainable_parameters(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad`` (recorded: what a stage trained)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "check_freeze_depth",
    "depth_groups",
    "freeze_groups",
    "group_summary",
    "keep_frozen_in_eval",
    "model_display_name",
    "num_depth_groups",
    "timm_group_with_matcher",
    "trainable_parameters",
]
