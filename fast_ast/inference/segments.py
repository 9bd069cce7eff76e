"""Event segments from per-span class scores: threshold, then merge runs of consecutive active spans.

A timeline is N consecutive spans (begin [N], end [N] seconds, end[i] == begin[i + 1]) with scores [N, C]
(window-level scores for classifiers, frame-level probabilities for event models).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Segment:
    label: str
    onset: float  # seconds
    offset: float  # seconds
    score: float  # the highest score inside the segment


def merge_active(scores: torch.Tensor, begin: torch.Tensor, end: torch.Tensor, threshold: float, class_names: list[str]) -> list[Segment]:
    """Segments where scores[:, c] >= threshold, one per run of consecutive spans, sorted by onset then label."""
    if scores.dim() != 2 or scores.shape[1] != len(class_names) or not scores.shape[0] == begin.shape[0] == end.shape[0]:
        raise ValueError(f"scores {tuple(scores.shape)} must be [N, {len(class_names)}] with {begin.shape[0]} spans")
    active = scores >= threshold
    segments = []
    for c, name in enumerate(class_names):
        # runs of True: +1 where a run starts, -1 just after it ends
        edges = torch.diff(torch.cat((active.new_zeros(1), active[:, c], active.new_zeros(1))).int())
        firsts, lasts = torch.nonzero(edges == 1).flatten(), torch.nonzero(edges == -1).flatten() - 1
        for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True):
            peak = float(scores[first : last + 1, c].max())
            segments.append(Segment(name, float(begin[first]), float(end[last]), peak))
    return sorted(segments, key=lambda s: (s.onset, s.label))
