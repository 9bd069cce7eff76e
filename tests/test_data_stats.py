"""python -m fast_ast.stats: fbank mean/std of a training split, against torchaudio's Kaldi fbank."""

from __future__ import annotations

import pytest
import torch
import torchaudio

from fast_ast.data.audio_io import read_audio
from fast_ast.data.folder import FolderDataModule
from fast_ast.stats import fbank_statistics, main
from tests.fixtures.corpora import make_folder
from tests.fixtures.runs import build_datamodule, corpus_overrides
from tests.helpers import compose_config


def kaldi_features(waveform: torch.Tensor, target_length: int) -> torch.Tensor:
    """[S] -> [target_length, 128] as AST computes them (torchaudio Kaldi fbank, zero-padded)."""
    fbank = torchaudio.compliance.kaldi.fbank(
        (waveform - waveform.mean()).unsqueeze(0), htk_compat=True, sample_frequency=16000, use_energy=False,
        window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10,
    )
    return torch.nn.functional.pad(fbank, (0, 0, 0, target_length - fbank.shape[0]))


def test_statistics_match_kaldi_fbank_of_the_training_clips(tmp_path):
    root = make_folder(tmp_path / "f")
    dm = build_datamodule(FolderDataModule, root, tmp_path)
    dm.setup()
    stats = fbank_statistics(dm, batch_size=4, device=torch.device("cpu"))
    reference = torch.cat([kaldi_features(read_audio(clip.path, 16000), 100) for clip in dm.clips["train"]]).double()
    assert stats["clips"] == 9 and stats["values"] == reference.numel()
    assert stats["mean"] == pytest.approx(reference.mean().item(), rel=1e-4)
    assert stats["std"] == pytest.approx(reference.std(unbiased=False).item(), rel=1e-4)
    assert fbank_statistics(dm, batch_size=4, device=torch.device("cpu"), max_clips=5)["clips"] == 5


def test_command_prints_config_lines(tmp_path, capsys):
    root = make_folder(tmp_path / "f")
    cfg = compose_config("stats", [line for line in corpus_overrides(tmp_path, "folder", root) if line.startswith(("data", "paths"))])
    stats = main(cfg)
    out = capsys.readouterr().out
    assert f"  norm_mean: {stats['mean']:.6g}\n" in out and f"  norm_std: {stats['std']:.6g}\n" in out
