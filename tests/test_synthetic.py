"""The built-in corpus: deterministic, balanced enough, and acoustically what each class says."""

from __future__ import annotations

import numpy as np
import torch

from fast_ast.data.synthetic import SyntheticClips, SyntheticDataModule, synthesize_clip
from fast_ast.data.synthetic_events import EVENT_CLASSES
from fast_ast.frontend.fbank import FbankFrontend


def test_same_seed_same_corpus_and_splits_differ():
    a = SyntheticClips(20, seed=3, split="train", samples=8000, rate=16000)
    b = SyntheticClips(20, seed=3, split="train", samples=8000, rate=16000)
    c = SyntheticClips(20, seed=3, split="val", samples=8000, rate=16000)
    assert torch.equal(a.audio, b.audio) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.audio, c.audio)


def test_datamodule_batches_and_classes():
    dm = SyntheticDataModule(train_size=30, val_size=10, test_size=10, batch_size=8, clip_seconds=1.0)
    dm.setup()
    assert dm.num_classes == len(EVENT_CLASSES) >= 10 and not dm.multilabel
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (8, 16000) and batch["target"].dtype == torch.long
    assert len(batch["id"]) == 8 and batch["id"][0].startswith("train-")


def test_event_lies_between_onset_and_offset():
    rng = np.random.default_rng(0)
    clip, onset, offset = synthesize_clip(list(EVENT_CLASSES).index("pure_tone"), rng, 16000, 16000)
    energy_in = np.mean(clip[onset:offset] ** 2)
    outside = np.concatenate([clip[:onset], clip[offset:]])
    assert outside.size == 0 or energy_in > 10 * np.mean(outside**2)


def dominant_mel_bin_over_time(name: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    clip, onset, offset = synthesize_clip(list(EVENT_CLASSES).index(name), rng, 16000, 16000, min_event_fraction=0.9)
    fbank = FbankFrontend(target_length=98).fbank(torch.from_numpy(clip)[None])[0]
    frames = fbank[onset // 160 + 3 : offset // 160 - 3]
    return frames.argmax(dim=1).numpy()


def test_chirps_rise_and_fall():
    up, down = dominant_mel_bin_over_time("up_chirp"), dominant_mel_bin_over_time("down_chirp")
    assert up[-5:].mean() > up[:5].mean() + 20
    assert down[-5:].mean() < down[:5].mean() - 20


def test_band_noises_sit_in_their_bands():
    low, high = dominant_mel_bin_over_time("lowband_noise"), dominant_mel_bin_over_time("highband_noise")
    assert np.median(low) < 40 < 90 < np.median(high)


def test_batch_size_schedule_follows_the_epoch():
    dm = SyntheticDataModule(train_size=40, val_size=4, test_size=4, batch_size=[4, 8, 16], clip_seconds=0.5)
    dm.setup()
    assert dm.reloads_each_epoch
    assert [dm.batch_size_at(e) for e in range(5)] == [4, 8, 16, 16, 16]
