"""suite=frontend: batched FbankFrontend vs a Python loop over torchaudio's kaldi.fbank on a batch of clips.

Both compute the same [frames, 128] log-mel matrices (AST recipe settings); same process, alternating
rounds, median of the per-round time ratios.

Settings: `frontend_suite.*` and `device` from conf/bench.yaml.
    python -m fast_ast.bench suite=frontend [frontend_suite.batch_size=32] [frontend_suite.seconds=10.0]
"""

from __future__ import annotations

import statistics

import torch
import torchaudio.compliance.kaldi as kaldi
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from fast_ast.bench.throughput import bench_device
from fast_ast.bench.timing import alternating_times, device_description, median_ratio
from fast_ast.frontend.fbank import FbankFrontend

def kaldi_loop(frontend: FbankFrontend, waveforms: torch.Tensor) -> list[torch.Tensor]:
    """[B, S] -> B x [frames, F], one torchaudio call per clip (the AST recipes' dataset code)."""
    return [
        kaldi.fbank(
            clip.unsqueeze(0), htk_compat=True, sample_frequency=frontend.sample_rate, use_energy=False,
            window_type="hanning", num_mel_bins=frontend.num_mel_bins, dither=0.0, frame_shift=10,
        )
        for clip in waveforms
    ]


@torch.inference_mode()
def run(cfg: DictConfig) -> dict:
    settings = cfg.frontend_suite
    device = bench_device(cfg)
    frontend = FbankFrontend(sample_rate=settings.sample_rate, num_mel_bins=settings.num_mel_bins).to(device)
    samples = int(settings.seconds * settings.sample_rate)
    waveforms = 0.1 * torch.randn(settings.batch_size, samples, device=device)
    difference = (frontend.fbank(waveforms) - torch.stack(kaldi_loop(frontend, waveforms))).abs().max().item()
    times = alternating_times(
        {"batched": lambda: frontend.fbank(waveforms), "kaldi_loop": lambda: kaldi_loop(frontend, waveforms)},
        device, warmup=settings.warmup, repeats=settings.repeats,
    )
    result = {
        "device": device_description(device),
        "batch_size": settings.batch_size,
        "seconds": settings.seconds,
        "batched_s": statistics.median(times["batched"]),
        "kaldi_loop_s": statistics.median(times["kaldi_loop"]),
        "speedup": median_ratio(times["kaldi_loop"], times["batched"]),  # > 1: the batched frontend is faster
        "max_abs_diff": difference,
        "repeats": settings.repeats,
    }
    table = Table(title=f"log-mel fbank of {settings.batch_size} x {settings.seconds:g} s clips — {result['device']}")
    for column in ("batched FbankFrontend s", "kaldi.fbank loop s", "speedup (median ratio)", "max |Δ|"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{result['batched_s']:.3f}", f"{result['kaldi_loop_s']:.3f}", f"{result['speedup']:.2f}x", f"{difference:.1e}"
    )
    Console().print(table)
    return result
