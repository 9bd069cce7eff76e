"""Band-limited resampling with bounded memory for any pair of rates, and for any window of the output.

Output sample n (at rate `new`) sits at input position c = n * orig / new. It is the sum over the input
samples m within `reach` = LOWPASS_WIDTH * orig / cutoff of c of x[m] * h(m / orig - n / new), with

    h(d) = sinc(d * cutoff) * cos(pi * d * cutoff / (2 * LOWPASS_WIDTH))^2 * cutoff / orig,   |d * cutoff| <= LOWPASS_WIDTH
    cutoff = ROLLOFF * min(orig, new)   (Hz)

the Hann-windowed sinc that torchaudio.functional.resample uses by default (same width and rolloff), so
for ordinary rates the two agree to float32 precision. The weights repeat with the output's phase
n mod new', new' = new / gcd(orig, new). torchaudio tabulates them as a strided convolution kernel of
new' x (orig' + 2 * reach) floats: 16000 x 44135 (2.8 GB) for 44101 -> 16000. Here the table is
new' x taps (taps = 2 * ceil(reach) + 2: 16000 x 36 floats, 2.3 MB, for 44101 -> 16000), and the output
is computed CHUNK samples at a time, so memory is at most new x taps + CHUNK x taps floats whatever the
ratio (new' <= new; taps grows with orig / new only).

Each output depends only on its own position, so any window [start, start + count) of the output is
computed from the input samples around it (`input_span`): a long file is decoded only there, and the
window equals the same slice of the whole resampled signal exactly.
"""

from __future__ import annotations

import math

import torch

CHUNK = 16384  # output samples gathered per step (whole blocks of new' outputs, at least one)

LOWPASS_WIDTH = 6  # zero crossings of the sinc on each side (torchaudio's default lowpass_filter_width)
ROLLOFF = 0.99  # cutoff as a fraction of the lower Nyquist rate (torchaudio's default)


def output_length(input_samples: int, orig: int, new: int) -> int:
    """Samples at `new` of a signal of `input_samples` at `orig`: ceil(input_samples * new / orig)."""
    return -(-input_samples * new // orig)


def _reach(orig: int, new: int) -> float:
    """Input samples on each side of an output's position that carry weight."""
    return LOWPASS_WIDTH * orig / (ROLLOFF * min(orig, new))


def input_span(start: int, count: int, orig: int, new: int) -> tuple[int, int]:
    """[first, stop) of the input samples that outputs [start, start + count) depend on (may exceed the signal)."""
    reach = _reach(orig, new)
    first = math.floor(start * orig / new - reach) - 1
    stop = math.floor((start + max(count, 1) - 1) * orig / new + reach) + 2
    return first, stop


def phase_table(orig: int, new: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights [new', taps] float32, first [new'] int64): for output n = j * new' + i, its taps are the
    input samples j * orig' + first[i] + (0 .. taps - 1) with weights[i]."""
    divisor = math.gcd(orig, new)
    orig_r, new_r = orig // divisor, new // divisor
    cutoff, reach = ROLLOFF * min(orig, new), _reach(orig, new)
    taps = 2 * math.ceil(reach) + 2
    centre = torch.arange(new_r, dtype=torch.float64) * orig_r / new_r  # [new'] input position of each phase
    first = torch.floor(centre - reach)
    d = (first[:, None] + torch.arange(taps, dtype=torch.float64) - centre[:, None]) * (cutoff / orig)
    d = d.clamp(-LOWPASS_WIDTH, LOWPASS_WIDTH)  # in sinc zero crossings; the window is 0 at the clamp
    window = torch.cos(d * (math.pi / (2 * LOWPASS_WIDTH))) ** 2
    weights = torch.special.sinc(d) * window * (cutoff / orig)
    return weights.float(), first.to(torch.int64)


def resample(
    segment: torch.Tensor, orig: int, new: int, start: int = 0, count: int | None = None, offset: int = 0
) -> torch.Tensor:
    """Outputs [start, start + count) at rate `new` [count] float32 of a signal at rate `orig`.

    segment [S]: the signal's samples offset .. offset + S - 1; the signal is zero outside them (as beyond
    its ends). count None: up to the end of the resampled signal, output_length(offset + S, orig, new).
    Block by block: outputs j * new' + (0 .. new' - 1) read the inputs j * orig' + first[i] + (0 .. taps - 1);
    CHUNK outputs (a whole number of blocks, at least one) are gathered [B, new', taps] at a time.
    """
    if count is None:
        count = max(output_length(offset + segment.shape[0], orig, new) - start, 0)
    if count == 0:
        return torch.zeros(0)
    weights, first = phase_table(orig, new)
    divisor = math.gcd(orig, new)
    orig_r, new_r = orig // divisor, new // divisor
    taps = weights.shape[1]
    j0, j1 = start // new_r, (start + count - 1) // new_r
    lowest = j0 * orig_r + int(first[0]) - offset  # first input index read, relative to the segment
    highest = j1 * orig_r + int(first[-1]) + taps - offset  # one past the last
    left, right = max(0, -lowest), max(0, highest - segment.shape[0])
    windows = torch.nn.functional.pad(segment.float(), (left, right)).unfold(0, taps, 1)  # [P, taps] view
    per_step = max(1, CHUNK // new_r)
    blocks = []
    for j in range(j0, j1 + 1, per_step):
        rows = (torch.arange(j, min(j + per_step, j1 + 1)) * orig_r - offset + left)[:, None] + first  # [B, new']
        values = windows.index_select(0, rows.reshape(-1)).view(*rows.shape, taps)  # [B, new', taps]
        blocks.append((values * weights).sum(dim=-1).reshape(-1))
    skip = start - j0 * new_r
    return torch.cat(blocks)[skip : skip + count]
