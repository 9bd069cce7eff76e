"""Reading, checking and caching audio files: the code path every file-based corpus shares."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from fast_ast.data import validation
from fast_ast.data.audio_cache import AudioStore
from fast_ast.data.audio_io import fit_length, read_audio
from fast_ast.data.clip_dataset import Clip, ClipDataset
from fast_ast.data.validation import (
    BadFilesError,
    CheckCache,
    UnknownLabelsError,
    apply_bad_file_policy,
    check_files,
    check_known_labels,
    inspect_file,
)
from tests.fixtures.corpora import BAD_KINDS, data_chunk_size, write_bad, write_clip

EXPECTED_REASON = {
    "truncated": "truncated",
    "empty": "empty file",
    "not_audio": "not audio",
    "nan": "NaN",
    "zero_length": "zero length",
    "missing": "missing file",
}


def dominant_frequency(waveform: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform.numpy()))
    return float(np.fft.rfftfreq(waveform.shape[0], 1 / rate)[spectrum.argmax()])


def test_read_audio_resamples_and_downmixes(tmp_path):
    path = write_clip(tmp_path / "a.flac", 1000.0, seconds=1.0, rate=44100, channels=2)  # channels at 0.3 and 0.15
    waveform = read_audio(path, 16000)
    assert waveform.dtype == torch.float32 and waveform.shape == (16000,)
    assert dominant_frequency(waveform, 16000) == pytest.approx(1000.0, abs=1.0)
    middle = waveform[1000:-1000]
    assert middle.abs().max().item() == pytest.approx(0.225, abs=0.005)  # mean of the two channels


def test_read_audio_window_matches_the_whole_read(tmp_path):
    path = write_clip(tmp_path / "a.wav", 440.0, seconds=1.0)
    whole = read_audio(path, 16000)
    assert torch.equal(read_audio(path, 16000, start=1234, length=4000), whole[1234:5234])
    other_rate = read_audio(write_clip(tmp_path / "b.wav", 440.0, rate=44100), 16000)
    windowed = read_audio(tmp_path / "b.wav", 16000, start=100, length=500)
    assert torch.equal(windowed, other_rate[100:600])


def test_fit_length_pads_and_crops():
    x = torch.arange(10.0)
    assert torch.equal(fit_length(x, 13), torch.cat([x, torch.zeros(3)]))
    assert torch.equal(fit_length(x, 4, "start"), x[:4])
    assert torch.equal(fit_length(x, 4, "center"), x[3:7])
    starts = {int(fit_length(x, 4, "random")[0]) for _ in range(200)}
    assert starts == set(range(7))


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_inspect_file_names_each_kind_of_bad_file(tmp_path, kind):
    path = write_bad(tmp_path / f"{kind}.wav", kind)
    info = inspect_file(str(path))
    assert not info.ok and EXPECTED_REASON[kind] in info.reason


def test_truncated_fixture_really_is_truncated(tmp_path):
    path = write_bad(tmp_path / "t.wav", "truncated")
    assert data_chunk_size(path) == 2 * 16000 > path.stat().st_size - 44
    assert sf.info(str(path)).frames < 16000  # libsndfile alone would read it silently


def test_inspect_file_describes_good_and_missing_files(tmp_path):
    info = inspect_file(str(write_clip(tmp_path / "a.flac", 440.0, seconds=1.5, rate=44100, channels=2)))
    assert info.ok and (info.format, info.rate, info.channels) == ("FLAC", 44100, 2)
    assert info.seconds == pytest.approx(1.5)
    assert inspect_file(str(tmp_path / "nope.wav")).reason == "missing file"


def test_check_cache_makes_a_second_run_decode_nothing(tmp_path, monkeypatch):
    paths = [str(write_clip(tmp_path / f"c{i}.wav", 300.0 + i)) for i in range(3)] + [str(write_bad(tmp_path / "bad.wav", "empty"))]
    calls = []
    real = validation.inspect_file
    monkeypatch.setattr(validation, "inspect_file", lambda path, store=None: calls.append(path) or real(path, store))
    cache = CheckCache(tmp_path / "checks.sqlite")
    first = check_files(paths, cache)
    assert len(calls) == 4 and not first[paths[3]].ok
    calls.clear()
    second = check_files(paths, CheckCache(tmp_path / "checks.sqlite"))
    assert calls == [] and second == first
    write_clip(tmp_path / "c1.wav", 999.0, seconds=2.0)  # changed size and mtime: checked again
    third = check_files(paths, cache)
    assert calls == [paths[1]] and third[paths[1]].seconds == pytest.approx(2.0)


def test_check_files_in_worker_processes(tmp_path):
    paths = [str(write_clip(tmp_path / f"c{i}.wav", 300.0 + i)) for i in range(4)] + [str(tmp_path / "missing.wav")]
    infos = check_files(paths, CheckCache(tmp_path / "checks.sqlite"), num_workers=2)
    assert list(infos) == paths
    assert [info.ok for info in infos.values()] == [True] * 4 + [False]


def test_audio_store_caches_decoded_resampled_copies(tmp_path):
    flac = write_clip(tmp_path / "a.flac", 700.0, rate=44100, channels=2)
    wav = write_clip(tmp_path / "b.wav", 700.0)
    store = AudioStore(16000, tmp_path / "cache")
    flac_info, wav_info = inspect_file(str(flac), store), inspect_file(str(wav), store)
    assert store.caches(flac_info) and not store.caches(wav_info)
    cached = store.cache_path(flac_info)
    assert cached.is_file()  # written by the check itself
    assert torch.equal(store.load(flac_info), read_audio(flac, 16000))
    np.save(cached, np.full(16000, 0.5, dtype=np.float32))  # a load now comes from the cache, not the source
    assert torch.equal(store.load(flac_info, 10, 5), torch.full((5,), 0.5))
    cached.unlink()
    assert torch.equal(store.load(flac_info), read_audio(flac, 16000)) and cached.is_file()  # re-created on use
    assert list((tmp_path / "cache").rglob("*.npy")) == [cached]


def test_bad_file_policy_error_lists_every_bad_file(tmp_path):
    paths = [str(write_clip(tmp_path / "ok.wav", 440.0))] + [str(write_bad(tmp_path / f"{k}.wav", k)) for k in BAD_KINDS]
    paths.append(str(tmp_path / "missing.wav"))
    infos = check_files(paths, CheckCache(tmp_path / "checks.sqlite"))
    with pytest.raises(BadFilesError) as error:
        apply_bad_file_policy(infos, "error", tmp_path / "run")
    message = str(error.value)
    assert "6 of 7 files" in message and str(tmp_path / "ok.wav") not in message
    for kind, reason in EXPECTED_REASON.items():
        assert f"{tmp_path / (kind + '.wav')}: " in message and reason in message
    report = json.loads((tmp_path / "run" / "bad_files.json").read_text())
    assert report["policy"] == "error" and report["count"] == 6


def test_bad_file_policy_skip_writes_the_list(tmp_path):
    paths = [str(write_clip(tmp_path / "ok.wav", 440.0)), str(write_bad(tmp_path / "nan.wav", "nan"))]
    infos = check_files(paths, CheckCache(tmp_path / "checks.sqlite"))
    assert apply_bad_file_policy(infos, "skip", tmp_path / "run") == {paths[1]}
    report = json.loads((tmp_path / "run" / "bad_files.json").read_text())
    assert report == {"policy": "skip", "count": 1, "files": [{"path": paths[1], "reason": "contains NaN or infinite samples"}]}
    with pytest.raises(ValueError, match="report_dir"):
        apply_bad_file_policy(infos, "skip", None)
    with pytest.raises(ValueError, match="on_bad_file"):
        apply_bad_file_policy(infos, "ignore", tmp_path)


def test_unknown_labels_are_named():
    check_known_labels(["a", "b"], ["a", "b", "c"], "x.csv")
    with pytest.raises(UnknownLabelsError, match=r"x.csv: 2 unknown label\(s\): 'q', 'z'"):
        check_known_labels(["a", "z", "q", "z"], ["a", "b"], "x.csv")


def test_clip_dataset_crops_long_files_and_pads_short_ones(tmp_path):
    long, short = write_clip(tmp_path / "long.wav", 440.0, seconds=2.0), write_clip(tmp_path / "short.wav", 440.0, seconds=0.5)
    store = AudioStore(16000)
    infos = {str(p): inspect_file(str(p)) for p in (long, short)}
    clips = [Clip(str(long), 1, "long"), Clip(str(short), 0, "short"), Clip(str(long), 2, "window", start=16000, length=8000)]
    whole = read_audio(long, 16000)
    eval_set = ClipDataset(clips, infos, store, 16000, num_classes=3, multilabel=False, crop="start")
    assert torch.equal(eval_set[0]["audio"], whole[:16000]) and eval_set[0]["target"] == 1
    assert torch.equal(eval_set[1]["audio"][8000:], torch.zeros(8000)) and eval_set[1]["audio"][:8000].abs().max() > 0.2
    assert torch.equal(eval_set[2]["audio"], torch.cat([whole[16000:24000], torch.zeros(8000)]))
    train_set = ClipDataset(clips, infos, store, 16000, num_classes=3, multilabel=False, crop="random")
    crops = [train_set[0]["audio"] for _ in range(6)]
    for crop in crops:  # each crop is a contiguous window of the file
        assert any(torch.equal(whole[o : o + 16000], crop) for o in range(16001))
    assert not all(torch.equal(crops[0], crop) for crop in crops[1:])
    multi = ClipDataset([Clip(str(long), (0, 2), "m")], infos, store, 16000, num_classes=3, multilabel=True)
    assert torch.equal(multi[0]["target"], torch.tensor([1.0, 0.0, 1.0]))
