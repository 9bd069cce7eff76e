"""suite=frontend: batched FbankFrontend vs a Python loop over torchaudio's kaldi.fbank on a batch of clips.

All compute the same [frames, 128] log-mel matrices (AST recipe settings); same process, alternating
rounds, median of the per-round time ratios. Contenders: `fbank` (FbankFrontend as training runs it:
cache-sized chunks of clips on CPU, one pass on a GPU), `one_pass` (the whole batch in one pass) and
`kaldi_loop` (one torchaudio call per clip, as the AST recipes' dataset code).

Settings: `frontend_suite.*` and `device` from conf/bench.yaml; one row per entry of frontend_suite.cases.
    python -m fast_ast.bench suite=frontend ['frontend_suite.cases=[{batch_size: 32, seconds: 10.0}]']
"""

from __future__ import annotations

import statistics

import torch
import torchaudio.compliance.kaldi as kaldi
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from fast_ast.device import resolve_device
from fast_ast.device import device_description
from fast_ast.measure.timing import alternating_times, median_ratio
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


def measure_case(frontend: FbankFrontend, device: torch.device, batch_size: int, seconds: float, warmup: int, repeats: int) -> dict:
    """One batch of `batch_size` clips of `seconds` s: seconds per call of each contender and their median ratios."""
    waveforms = 0.1 * torch.randn(batch_size, int(seconds * frontend.sample_rate), device=device)
    difference = (frontend.fbank(waveforms) - torch.stack(kaldi_loop(frontend, waveforms))).abs().max().item()
    times = alternating_times(
        {
            "fbank": lambda: frontend.fbank(waveforms),  # as training runs it (cache-sized chunks on CPU)
            "one_pass": lambda: frontend.log_mel(waveforms),  # the whole batch in one pass
            "kaldi_loop": lambda: kaldi_loop(frontend, waveforms),
        },
        device, warmup=warmup, repeats=repeats,
    )
    return {
        "batch_size": batch_size,
        "seconds": seconds,
        **{f"{name}_s": statistics.median(seconds_per_call) for name, seconds_per_call in times.items()},
        "speedup": median_ratio(times["kaldi_loop"], times["fbank"]),  # > 1: the batched frontend is faster
        "one_pass_speedup": median_ratio(times["kaldi_loop"], times["one_pass"]),
        "max_abs_diff": difference,
    }


@torch.inference_mode()
def run(cfg: DictConfig) -> dict:
    settings = cfg.frontend_suite
    device = resolve_device(cfg.device)
    frontend = FbankFrontend(sample_rate=settings.sample_rate, num_mel_bins=settings.num_mel_bins).to(device)
    rows = [
        measure_case(frontend, device, case.batch_size, case.seconds, settings.warmup, settings.repeats)
        for case in settings.cases
    ]
    result = {"device": device_description(device), "repeats": settings.repeats, "rows": rows}
    table = Table(title=f"log-mel fbank, batched FbankFrontend vs a loop of torchaudio's kaldi.fbank — {result['device']}")
    for column in ("clips", "s", "fbank s", "one pass s", "kaldi loop s", "speedup (fbank)", "speedup (one pass)", "max |Δ|"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["batch_size"]), f"{row['seconds']:g}", f"{row['fbank_s']:.4f}", f"{row['one_pass_s']:.4f}",
            f"{row['kaldi_loop_s']:.4f}", f"{row['speedup']:.2f}x", f"{row['one_pass_speedup']:.2f}x", f"{row['max_abs_diff']:.1e}",
        )
    Console().print(table)
    return result
