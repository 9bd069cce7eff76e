"""Sliding windows over a recording of any length, and the time spans their outputs stand for.

Windows of `window` samples start every `hop` samples from 0 until one reaches the end of the recording;
the last one is zero-padded past the end (as short clips are padded in training). A recording shorter than
one window gives a single padded window. Window-level scores are attributed to hop-wide spans around the
window centres, frame-level outputs (event models) are averaged over overlapping windows on a shared
frame grid (FrameAverager).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def window_starts(num_samples: int, window: int, hop: int) -> torch.Tensor:
    """[N] long start samples: 0, hop, 2 hop, ... until start + window >= num_samples."""
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1 sample, got window={window}, hop={hop}")
    count = 1 + max(0, math.ceil((num_samples - window) / hop))
    return torch.arange(count, dtype=torch.long) * hop


def cut_windows(waveform: torch.Tensor, starts: torch.Tensor, window: int) -> torch.Tensor:
    """waveform [S], starts [N] (increasing) -> [N, window] (zero-padded past the end)."""
    needed = int(starts[-1]) + window
    padded = F.pad(waveform, (0, max(0, needed - waveform.shape[-1])))
    return torch.stack([padded[int(start) : int(start) + window] for start in starts])


def tiling_spans(centres_s: torch.Tensor, width_s: float, duration_s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(begin [N], end [N]) seconds: the `width_s`-wide span around each centre, so that evenly spaced centres
    tile the recording; the first span reaches back to 0 and the last one forward to `duration_s`.

    Window-level scores use the window centres and the hop as width, frame-level ones the frame centres
    and the frame hop.
    """
    centres = centres_s.double()
    begin = (centres - width_s / 2).clamp(0, duration_s)
    end = (centres + width_s / 2).clamp(0, duration_s)
    begin[0] = 0.0
    end[-1] = duration_s
    return begin, end


class FrameAverager:
    """Frame outputs of overlapping windows on one shared frame grid, averaged where windows overlap.

    add(values [N, t, C], first_frame [N]) with window i's frames being grid frames first_frame[i] ..
    first_frame[i] + t - 1 (frames past `total_frames` are dropped); mean() -> [total_frames, C], 0 where
    no window covered a frame. Batches are added as they come, so a long recording never holds all frames.
    """

    def __init__(self, total_frames: int, classes: int):
        self.sums = torch.zeros(total_frames, classes, dtype=torch.float64)
        self.counts = torch.zeros(total_frames, 1, dtype=torch.float64)

    def add(self, values: torch.Tensor, first_frame: torch.Tensor) -> None:
        windows, frames, classes = values.shape
        index = (first_frame.view(-1, 1).cpu() + torch.arange(frames)).flatten()  # [N * t]
        keep = index < self.sums.shape[0]
        self.sums.index_add_(0, index[keep], values.detach().double().cpu().reshape(-1, classes)[keep])
        self.counts.index_add_(0, index[keep], torch.ones(int(keep.sum()), 1, dtype=torch.float64))

    def mean(self) -> torch.Tensor:
        return (self.sums / self.counts.clamp_min(1)).float()
