"""Token Merging against the reference release's arithmetic (facebookresearch/ToMe): the (r, inflection)
schedule of `parse_r` over a whole grid, and bipartite matching's edge cases."""

from __future__ import annotations

import pytest
import torch

from fast_ast.tome.merge import bipartite_soft_matching, merge_wavg
from fast_ast.tome.schedule import requested_schedule

INFLECTIONS = (-1.0, -0.5, 0.0, 0.5, 0.95, 1.0)


def reference_schedule(r: int, inflection: float, depth: int) -> list[int]:
    """ToMe's parse_r for (r, inflection): min_val = int(r(1 - inflect)), max_val = 2r - min_val,
    step = (max_val - min_val) / (depth - 1), layer i gets int(min_val + step * i)."""
    min_val = int(r * (1.0 - inflection))
    max_val = 2 * r - min_val
    step = (max_val - min_val) / (depth - 1)
    return [int(min_val + step * i) for i in range(depth)]


def test_schedule_equals_the_reference_on_the_whole_grid():
    mismatches = [
        (r, inflection, depth)
        for r in range(65)
        for depth in range(2, 25)
        for inflection in INFLECTIONS
        if requested_schedule(r, inflection, depth) != reference_schedule(r, inflection, depth)
    ]
    assert mismatches == []
    # the cases the previous formula, (last - first) * layer / (depth - 1), rounded differently
    assert requested_schedule(15, 0.95, 12)[-1] == 29
    assert requested_schedule(29, -1.0, 15)[7] == 28


@pytest.mark.parametrize("inflection", INFLECTIONS)
def test_one_layer_schedule_keeps_r(inflection):
    # the reference divides by depth - 1 = 0 here; one layer merges r, the schedule's total r * depth
    assert requested_schedule(7, inflection, 1) == [7]


@pytest.mark.parametrize("tokens", [2, 3])
def test_matching_with_fewer_than_two_mergeable_tokens_is_the_no_op(tokens):
    x = torch.randn(2, tokens, 4)
    for r in (0, 1, 5):
        matching = bipartite_soft_matching(x, r, num_protected=2)
        assert matching.r == 0 and matching.merged_a.shape == matching.into_b.shape == (2, 0)
        merged, size = merge_wavg(matching, x)
        torch.testing.assert_close(merged, x, rtol=0, atol=0)
        assert torch.equal(size, torch.ones(2, tokens, 1))
