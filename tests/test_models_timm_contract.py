"""What we rely on from timm's private `group_with_matcher` (wrapped in models/depth.py).

Pinned to the behaviour of timm 1.0.x: if an upgrade changes it, depth groups (and so freeze
depths and records) would change silently; this test makes the change loud.
"""

from __future__ import annotations

from transferlab.models.depth import timm_group_with_matcher

NAMES = ["stem.w", "b1.0.w", "b1.1.w", "b2.0.w", "norm.w", "fc.w"]


def _groups(grouped: dict) -> list[list[str]]:
    return [list(grouped[k]) for k in sorted(grouped)]


def test_dict_matcher_puts_unmatched_names_in_the_last_group():
    matcher = {"stem": r"^stem", "blocks": r"^b(\d+)"}
    assert _groups(timm_group_with_matcher(NAMES, matcher)) == [
        ["stem.w"],
        ["b1.0.w", "b1.1.w"],
        ["b2.0.w"],
        ["norm.w", "fc.w"],
    ]


def test_match_prev_group_merges_into_the_previous_group():
    matcher = {"stem": r"^stem", "blocks": [(r"^b(\d+)", None), (r"^norm", (99999,))]}
    assert _groups(timm_group_with_matcher(NAMES, matcher)) == [
        ["stem.w"],
        ["b1.0.w", "b1.1.w"],
        ["b2.0.w", "norm.w"],
        ["fc.w"],
    ]


def test_callable_matcher_orders_groups_by_its_ordinals():
    def matcher(name: str) -> int:
        return {"stem": 0, "b1": 1, "b2": 2}.get(name.split(".")[0], 3)

    assert _groups(timm_group_with_matcher(NAMES, matcher)) == [
        ["stem.w"],
        ["b1.0.w", "b1.1.w"],
        ["b2.0.w"],
        ["norm.w", "fc.w"],
    ]
