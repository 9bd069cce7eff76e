"""python -m fast_ast.predict: sliding windows over long recordings, event segments, unreadable inputs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
import torch

from fast_ast.data.synthetic_events import render_event
from fast_ast.inference.segments import Segment, merge_active
from fast_ast.inference.windows import FrameAverager, tiling_spans, window_starts
from fast_ast.modules.event_classifier import EventClassifier
from fast_ast.predict import predict
from tests.fixtures.corpora import write_bad, write_clip
from tests.helpers import compose_config

RATE = 16000


def predict_config(checkpoint, inputs, run_dir, *overrides):
    return compose_config("predict", [f"ckpt_path={checkpoint}", f"inputs={inputs}", f"paths.output_dir={run_dir}", "device=cpu", *overrides])


def read_csv(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


# ---- the pieces, against hand-computed cases -------------------------------------------------------
def test_window_starts_cover_the_recording():
    assert window_starts(10, 4, 2).tolist() == [0, 2, 4, 6]  # the last window ends exactly at 10
    assert window_starts(11, 4, 2).tolist() == [0, 2, 4, 6, 8]  # [8, 12) is zero-padded past 11
    assert window_starts(3, 4, 2).tolist() == [0]  # shorter than one window
    with pytest.raises(ValueError, match="hop"):
        window_starts(10, 4, 0)


def test_tiling_spans_and_merged_segments():
    # windows of 1 s every 0.5 s over 3 s: centres 0.5, 1.0, 1.5, 2.0, 2.5
    begin, end = tiling_spans(torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5]), 0.5, 3.0)
    assert begin.tolist() == [0.0, 0.75, 1.25, 1.75, 2.25] and end.tolist() == [0.75, 1.25, 1.75, 2.25, 3.0]
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.6], [0.7, 0.7], [0.2, 0.1]])
    segments = merge_active(scores, begin, end, 0.5, ["a", "b"])
    assert segments == [
        Segment("a", 0.0, 1.25, pytest.approx(0.9)),
        Segment("b", 1.25, 2.25, pytest.approx(0.7)),
        Segment("a", 1.75, 2.25, pytest.approx(0.7)),
    ]


def test_frame_averager_averages_overlapping_windows():
    averager = FrameAverager(total_frames=5, classes=1)
    averager.add(torch.tensor([[[1.0], [2.0], [3.0]], [[5.0], [7.0], [9.0]]]), torch.tensor([0, 2]))
    # frame 2 is covered by both windows: (3 + 5) / 2
    assert averager.mean().flatten().tolist() == [1.0, 2.0, 4.0, 7.0, 9.0]
    averager.add(torch.tensor([[[1.0], [1.0], [1.0]]]), torch.tensor([4]))  # frames 5, 6 are past the end
    assert averager.mean().flatten().tolist() == [1.0, 2.0, 4.0, 7.0, 5.0]


# ---- end to end with the classifier trained on the built-in corpus ------------------------------------
EVENTS = (("harmonic_stack", 3.0, 5.0), ("lowband_noise", 11.0, 13.5))


def long_recording(path, seconds=20.0):
    """Background noise with the EVENTS (label, onset s, offset s) rendered as the built-in corpus does."""
    rng = np.random.default_rng(1)
    audio = 0.01 * rng.standard_normal(int(seconds * RATE))
    for name, onset, offset in EVENTS:
        start, stop = int(onset * RATE), int(offset * RATE)
        audio[start:stop] += 0.3 * render_event(name, rng, stop - start, RATE)
    sf.write(str(path), audio.astype(np.float32), RATE)
    return path


def test_predict_finds_the_events_of_a_long_recording(trained_classifier, tmp_path):
    recording = long_recording(tmp_path / "field.wav")
    hop = 0.5
    summary = predict(predict_config(trained_classifier.best, recording, tmp_path / "run", f"hop_seconds={hop}"))
    windows = read_csv(tmp_path / "run" / "predictions.csv")
    assert summary["files"] == 1 and summary["unreadable"] == []
    assert [float(row["start_s"]) for row in windows] == [i * hop for i in range(39)]  # 1 s windows up to 20 s
    assert list(windows[0]) == ["file", "start_s", "end_s", "label_1", "score_1", "label_2", "score_2", "label_3", "score_3"]
    assert all(float(row["score_1"]) >= float(row["score_2"]) >= float(row["score_3"]) for row in windows)

    segments = read_csv(tmp_path / "run" / "events.csv")
    for name, onset, offset in EVENTS:
        found = [row for row in segments if row["label"] == name]
        assert len(found) == 1, (name, segments)
        assert abs(float(found[0]["onset_s"]) - onset) <= hop, (name, found)
        assert abs(float(found[0]["offset_s"]) - offset) <= hop, (name, found)


def test_unreadable_files_are_listed_and_the_others_processed(trained_classifier, tmp_path):
    inputs = tmp_path / "inputs"
    write_clip(inputs / "a.wav", 440.0, seconds=2.0)
    write_clip(inputs / "nested" / "b.flac", 880.0, seconds=0.5)  # shorter than one window
    write_bad(inputs / "notes.txt", "not_audio")
    (inputs / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(200)))
    summary = predict(predict_config(trained_classifier.best, inputs, tmp_path / "run", "hop_seconds=1.0", "top_k=2"))

    assert summary["files"] == 2
    listed = dict(summary["unreadable"])
    assert set(listed) == {str(inputs / "corrupt.wav"), str(inputs / "notes.txt")}
    assert all("not audio" in reason for reason in listed.values())  # the check training uses (validation.describe_file)
    assert [row["reason"] for row in read_csv(tmp_path / "run" / "unreadable.csv")] == [listed[str(inputs / "corrupt.wav")], listed[str(inputs / "notes.txt")]]
    rows = read_csv(tmp_path / "run" / "predictions.csv")
    assert [(row["file"], row["start_s"], row["end_s"]) for row in rows] == [
        (str(inputs / "a.wav"), "0.000", "1.000"),
        (str(inputs / "a.wav"), "1.000", "2.000"),
        (str(inputs / "nested" / "b.flac"), "0.000", "0.500"),
    ]


def test_nothing_readable_is_an_error(trained_classifier, tmp_path):
    write_bad(tmp_path / "inputs" / "notes.txt", "not_audio")
    with pytest.raises(SystemExit, match="no input could be processed"):
        predict(predict_config(trained_classifier.best, tmp_path / "inputs", tmp_path / "run"))


# ---- event models: frame probabilities of overlapping windows -------------------------------------
def event_checkpoint(path):
    """A randomly initialised tiny EventClassifier saved as a fast_ast checkpoint (3 classes, 1 s windows)."""
    torch.manual_seed(0)
    model = EventClassifier(
        backbone={"name": "ast", "embed_dim": 32, "depth": 1, "num_heads": 2},
        num_classes=3, class_names=["a", "b", "c"], multilabel=True, sample_rate=RATE, clip_samples=RATE,
        features={"num_mel_bins": 32, "target_length": 100}, augment={}, optim={"name": "adam", "lr": 1e-3},
    )
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return model.eval()


def test_event_model_segments_come_from_averaged_frames(tmp_path):
    model = event_checkpoint(tmp_path / "events.ckpt")
    audio = (0.1 * np.random.default_rng(0).standard_normal(int(1.5 * RATE))).astype(np.float32)
    sf.write(str(tmp_path / "clip.wav"), audio, RATE)
    # windows [0, 1) and [0.5, 1.5) s; frames 0.1 s apart, centred at 0.0875 + 0.1 j
    with torch.no_grad():
        windows = torch.stack([torch.from_numpy(audio[:RATE]), torch.from_numpy(audio[RATE // 2 :])])
        probs = torch.sigmoid(model.frame_logits(windows))  # [2, 9, 3]
    times = model.frame_times(probs.shape[1]).tolist()
    grid = {}  # frame centre (0.1 ms units) -> probabilities of every window covering it
    for window, shift in ((0, 0.0), (1, 0.5)):
        for j, t in enumerate(times):
            grid.setdefault(round((t + shift) * 10000), []).append(probs[window, j])
    centres = sorted(c for c in grid if c < 15000)
    frames = torch.stack([torch.stack(grid[c]).mean(dim=0) for c in centres])
    threshold = float(frames.median())
    begin = torch.tensor([0.0] + [c / 10000 - 0.05 for c in centres[1:]], dtype=torch.float64)
    end = torch.tensor([c / 10000 + 0.05 for c in centres[:-1]] + [1.5], dtype=torch.float64)
    expected = merge_active(frames, begin, end, threshold, ["a", "b", "c"])

    predict(predict_config(tmp_path / "events.ckpt", tmp_path / "clip.wav", tmp_path / "run", "hop_seconds=0.5", f"threshold={threshold}"))
    written = read_csv(tmp_path / "run" / "events.csv")
    assert expected and [(row["label"], float(row["onset_s"]), float(row["offset_s"])) for row in written] == [
        (s.label, pytest.approx(s.onset, abs=1e-3), pytest.approx(s.offset, abs=1e-3)) for s in expected
    ]
    with pytest.raises(ValueError, match="multiple of its frame hop"):
        predict(predict_config(tmp_path / "events.ckpt", tmp_path / "clip.wav", tmp_path / "run2", "hop_seconds=0.25"))
