"""Procedural sound events for the built-in corpus: each class a generator of one acoustically distinct event.

Every generator maps (rng, samples, sample_rate) -> float64 waveform [samples] with peak 1.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

EventGenerator = Callable[[np.random.Generator, int, int], np.ndarray]


def _time(samples: int, rate: int) -> np.ndarray:
    return np.arange(samples) / rate


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / (np.abs(x).max() + 1e-12)


def _band_noise(rng: np.random.Generator, samples: int, rate: int, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, samples)


def pure_tone(rng, samples, rate):
    return np.sin(2 * np.pi * rng.uniform(400, 3000) * _time(samples, rate))


def _chirp(rng, samples, rate, rising: bool):
    low, high = rng.uniform(200, 800), rng.uniform(2500, 6000)
    start, end = (low, high) if rising else (high, low)
    t = _time(samples, rate)
    duration = samples / rate
    phase = 2 * np.pi * (start * t + (end - start) * t**2 / (2 * duration))
    return np.sin(phase)


def up_chirp(rng, samples, rate):
    return _chirp(rng, samples, rate, rising=True)


def down_chirp(rng, samples, rate):
    return _chirp(rng, samples, rate, rising=False)


def harmonic_stack(rng, samples, rate):
    f0, t = rng.uniform(100, 300), _time(samples, rate)
    harmonics = range(1, int(rng.integers(6, 11)))
    return sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in harmonics)


def lowband_noise(rng, samples, rate):
    return _band_noise(rng, samples, rate, 100, rng.uniform(600, 900))


def highband_noise(rng, samples, rate):
    return _band_noise(rng, samples, rate, rng.uniform(3000, 4000), 7500)


def click_train(rng, samples, rate):
    period = int(rate / rng.uniform(8, 25))
    x = np.zeros(samples)
    x[rng.integers(0, period) :: period] = 1.0
    return x


def am_tone(rng, samples, rate):
    t = _time(samples, rate)
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(4, 10) * t))
    return envelope * np.sin(2 * np.pi * rng.uniform(500, 2500) * t)


def fm_tone(rng, samples, rate):
    t, rate_hz = _time(samples, rate), rng.uniform(4, 8)
    depth = rng.uniform(150, 400)
    phase = 2 * np.pi * rng.uniform(1000, 2500) * t - depth / rate_hz * np.cos(2 * np.pi * rate_hz * t)
    return np.sin(phase)


def noise_bursts(rng, samples, rate):
    burst, gap = int(rate * rng.uniform(0.03, 0.06)), int(rate * rng.uniform(0.08, 0.15))
    gate = (np.arange(samples) % (burst + gap)) < burst
    return rng.standard_normal(samples) * gate


EVENT_CLASSES: dict[str, EventGenerator] = {
    "pure_tone": pure_tone,
    "up_chirp": up_chirp,
    "down_chirp": down_chirp,
    "harmonic_stack": harmonic_stack,
    "lowband_noise": lowband_noise,
    "highband_noise": highband_noise,
    "click_train": click_train,
    "am_tone": am_tone,
    "fm_tone": fm_tone,
    "noise_bursts": noise_bursts,
}


def render_event(name: str, rng: np.random.Generator, samples: int, rate: int) -> np.ndarray:
    """One event of class `name`, [samples], peak 1, with 5 ms fade in/out."""
    x = _normalise(EVENT_CLASSES[name](rng, samples, rate))
    fade = min(int(0.005 * rate), samples // 2)
    if fade:
        ramp = np.linspace(0, 1, fade)
        x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
    return x
