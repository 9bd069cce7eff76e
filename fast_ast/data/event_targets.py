"""Frame-level and clip-level targets of a window inside an annotated recording.

A window of `seconds` starting at `start` (seconds in the recording) is cut into `bins` equal bins; bin b
covers [start + b * w, start + (b + 1) * w) with w = seconds / bins. Event (onset, offset, class c) makes
bin b of class c active when it covers at least half of the bin, or half of the event when the event is
shorter than a bin:  overlap(event, bin) >= 0.5 * min(w, offset - onset).
With a background class (the last row), a bin is background when no event class is active in it.
The clip-level target of a class is 1 when any of its bins is active.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

Event = tuple[float, float, int]  # (onset s, offset s, class index)


def frame_targets(
    events: Sequence[Event], start: float, seconds: float, bins: int, num_event_classes: int, background: bool = False
) -> torch.Tensor:
    """[num_event_classes (+1 with background), bins] float {0, 1} targets of the window."""
    width = seconds / bins
    targets = torch.zeros(num_event_classes + int(background), bins)
    if events:
        times = torch.tensor([(onset, offset) for onset, offset, _ in events], dtype=torch.float64)  # [E, 2]
        classes = torch.tensor([label for _, _, label in events])
        left = start + width * torch.arange(bins, dtype=torch.float64)  # [bins]
        overlap = (torch.minimum(times[:, 1:], left + width) - torch.maximum(times[:, :1], left)).clamp_min(0)  # [E, bins]
        needed = 0.5 * torch.clamp(times[:, 1:] - times[:, :1], max=width)  # [E, 1]
        active = ((overlap > 0) & (overlap >= needed - 1e-9)).float()
        targets[:num_event_classes] = (F.one_hot(classes, num_event_classes).T.to(active.dtype) @ active).clamp(max=1.0)
    if background:
        targets[-1] = 1.0 - targets[:num_event_classes].amax(dim=0)
    return targets


def clip_targets(frames: torch.Tensor) -> torch.Tensor:
    """[C, bins] -> [C]: a class is present in the clip when any of its bins is active."""
    return frames.amax(dim=-1)
