"""FbankFrontend against torchaudio's Kaldi fbank, and the batch augmentations against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from fast_ast.frontend.augment import Augment, mix_pair, spec_augment, time_roll
from fast_ast.frontend.fbank import FbankFrontend

SAMPLE_RATE = 16000


def noisy_tones(batch: int, seconds: float, seed: int) -> torch.Tensor:
    """[batch, samples]: white noise plus two random tones per clip, amplitude ~0.3, with a DC offset."""
    generator = torch.Generator().manual_seed(seed)
    samples = int(seconds * SAMPLE_RATE)
    t = torch.arange(samples) / SAMPLE_RATE
    freqs = 100 + 7000 * torch.rand(batch, 2, 1, generator=generator)
    tones = torch.sin(2 * math.pi * freqs * t).sum(dim=1) * 0.1
    return tones + 0.05 * torch.randn(batch, samples, generator=generator) + 0.01


def kaldi_fbank(waveform: torch.Tensor) -> torch.Tensor:
    """[S] -> [frames, 128] with the AST recipes' settings."""
    return kaldi.fbank(
        waveform.unsqueeze(0), htk_compat=True, sample_frequency=SAMPLE_RATE, use_energy=False,
        window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10,
    )


@pytest.mark.parametrize("seconds", [10.0, 1.3])
@pytest.mark.parametrize("cpu_chunk_frames", [1, 2048, 10**6])  # clip by clip; 2 of 3 10 s clips, then 1; one pass
def test_fbank_matches_torchaudio_kaldi(seconds, cpu_chunk_frames):
    waveform = noisy_tones(3, seconds, seed=int(seconds * 10))
    frontend = FbankFrontend(num_mel_bins=128, cpu_chunk_frames=cpu_chunk_frames)
    ours = frontend.fbank(waveform)
    for clip, features in zip(waveform, ours, strict=True):
        reference = kaldi_fbank(clip)
        assert features.shape == reference.shape == (frontend.num_frames(waveform.shape[1]), 128)
        assert (features - reference).abs().max().item() <= 1e-3


def test_mel_banks_match_torchaudio_kaldi():
    frontend = FbankFrontend(num_mel_bins=128)
    banks, _ = kaldi.get_mel_banks(128, 512, float(SAMPLE_RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
    reference = torch.nn.functional.pad(banks, (0, 1))  # Kaldi appends a zero column for the Nyquist bin
    # torchaudio builds the banks in float32, ours in float64 (then cast): agreement to float32 rounding of mels ~3000
    torch.testing.assert_close(frontend.mel_banks.T, reference.float(), rtol=0, atol=5e-5)
    assert frontend.mel_banks.shape == (257, 128)


def test_forward_is_the_ast_recipe():
    """AST: kaldi fbank of the mean-removed clip, zero-padded/cropped to target_length, (x - mean) / (2 std)."""
    frontend = FbankFrontend(target_length=100, norm_mean=-4.27, norm_std=4.57)
    for seconds in (0.5, 1.3):  # 48 frames (padded), 128 frames (cropped)
        waveform = noisy_tones(2, seconds, seed=7)
        reference = []
        for clip in waveform:
            fbank = kaldi_fbank(clip - clip.mean())
            fbank = torch.nn.functional.pad(fbank, (0, 0, 0, max(0, 100 - fbank.shape[0])))[:100]
            reference.append((fbank + 4.27) / (4.57 * 2))
        assert (frontend(waveform) - torch.stack(reference)).abs().max().item() <= 1e-3


def test_fit_frames_pads_with_zeros_and_crops():
    frontend = FbankFrontend(target_length=5)
    short = torch.arange(1.0, 7.0).view(1, 3, 2)
    padded = frontend.fit_frames(short)
    assert padded.shape == (1, 5, 2)
    assert torch.equal(padded[:, :3], short) and torch.equal(padded[:, 3:], torch.zeros(1, 2, 2))
    long = torch.arange(16.0).view(1, 8, 2)
    assert torch.equal(frontend.fit_frames(long), long[:, :5])


def test_normalize_by_hand():
    frontend = FbankFrontend(norm_mean=-4.27, norm_std=4.57)
    x = torch.tensor([[[-4.27, 4.87, -13.41]]])
    torch.testing.assert_close(frontend.normalize(x), torch.tensor([[[0.0, 1.0, -1.0]]]))


def test_short_waveform_and_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="shorter than one 400-sample frame"):
        FbankFrontend().fbank(torch.zeros(1, 399))
    with pytest.raises(ValueError, match="norm_std"):
        FbankFrontend(norm_std=0.0)
    with pytest.raises(ValueError, match="augment.mixup_level"):
        Augment(mixup_level="spectrogram")


# ---- augmentation ------------------------------------------------------------------------------
def band(zeroed: torch.Tensor) -> int:
    """Width of the single contiguous band of True in a 1-D bool tensor (asserts it is one band)."""
    index = zeroed.nonzero().flatten()
    if len(index):
        assert index[-1] - index[0] + 1 == len(index), f"mask is not one band: {index.tolist()}"
    return len(index)


def test_spec_augment_masks_one_band_per_axis_within_limits():
    torch.manual_seed(0)
    x = torch.rand(64, 50, 40) + 1.0  # no zero before masking
    masked = spec_augment(x, freqm=10, timem=15, seeds=torch.arange(64))
    assert torch.equal(masked, spec_augment(x, freqm=10, timem=15, seeds=torch.arange(64)))  # same seeds, same masks
    assert torch.equal(masked[5:9], spec_augment(x[5:9], freqm=10, timem=15, seeds=torch.arange(5, 9)))  # per clip, not per batch
    zero = masked == 0
    freq_widths, time_widths = [], []
    for sample in zero:
        zero_bins, zero_frames = sample.all(dim=0), sample.all(dim=1)
        freq_widths.append(band(zero_bins))
        time_widths.append(band(zero_frames))
        assert torch.equal(sample, zero_bins.unsqueeze(0) | zero_frames.unsqueeze(1))  # nothing else zeroed
    assert max(freq_widths) < 10 and max(time_widths) < 15  # widths ~ U{0 .. max - 1}, as AST's torchaudio masks
    assert min(freq_widths) < 3 < max(freq_widths) and min(time_widths) < 4 < max(time_widths)
    assert torch.equal(masked[~zero], x[~zero])


def test_mix_pair_weights_each_clip_with_its_partner():
    audio = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    partner = torch.tensor([[3.0, 4.0], [1.0, 2.0], [5.0, 6.0]])
    weight = torch.tensor([0.25, 1.0, 0.5])
    torch.testing.assert_close(mix_pair(audio, partner, weight), torch.tensor([[2.5, 3.5], [3.0, 4.0], [5.0, 6.0]]))


def test_time_roll_is_a_circular_shift_within_limits():
    torch.manual_seed(0)
    x = torch.rand(32, 20, 3)
    rolled = time_roll(x, max_shift=4, seeds=torch.arange(32))
    shifts = []
    for original, out in zip(x, rolled, strict=True):
        matches = [s for s in range(-4, 4) if torch.equal(out, torch.roll(original, s, dims=0))]
        assert len(matches) == 1
        shifts.append(matches[0])
    assert len(set(shifts)) > 3


def test_feature_noise_is_bounded():
    torch.manual_seed(0)
    x = torch.zeros(8, 10, 4)
    noisy = Augment(noise=0.3).perturb(x, torch.arange(8))
    assert (noisy >= 0).all() and (noisy < 0.3).all() and noisy.abs().sum() > 0


def test_classifier_forward_does_not_augment():
    from fast_ast.modules.classifier import AudioClassifier

    torch.manual_seed(0)
    model = AudioClassifier(
        backbone={"name": "ast", "embed_dim": 32, "depth": 1, "num_heads": 2},
        num_classes=3, class_names=["a", "b", "c"], multilabel=False, sample_rate=SAMPLE_RATE, clip_samples=16000,
        features={"num_mel_bins": 128, "target_length": 100},
        augment={"mixup": 1.0, "freqm": 24, "timem": 20, "noise": 0.5, "time_shift": 10},
        optim={"lr": 1e-3},
    )
    audio = noisy_tones(4, 1.0, seed=3)
    with torch.no_grad():
        model.eval()
        plain = model.backbone(model.frontend(audio))
        torch.testing.assert_close(model(audio), plain, rtol=0, atol=0)
        torch.testing.assert_close(model(audio), plain, rtol=0, atol=0)
        model.train()
        torch.testing.assert_close(model(audio), plain, rtol=0, atol=0)  # forward never augments
        batch = {"audio": audio, "view_seed": torch.arange(4), "mix_audio": audio.flip(0), "mix_weight": torch.full((4,), 0.6)}
        augmented = model.train_features(batch)
        assert not torch.allclose(augmented, model.frontend(audio))  # while the training path does
