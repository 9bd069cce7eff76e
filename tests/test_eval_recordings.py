"""python -m fast_ast.eval data=events with a clip classifier: windowed segment- and recording-level metrics."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from fast_ast.data.synthetic_events import render_event
from fast_ast.eval import evaluate
from fast_ast.inference.recordings import aggregate_windows, class_metrics, match_classes, top1_accuracy, window_targets
from fast_ast.modules.checkpoint import load_classifier
from fast_ast.results import read_results
from tests.helpers import compose_config

RATE = 16000


# ---- the pieces, against hand-computed cases -------------------------------------------------------
def test_class_metrics_by_hand():
    # class a: positives ranked 1st and 3rd -> AP (1 + 2/3) / 2; 7 of the 8 (pos, neg) pairs in order
    # class b: both positives on top -> AP 1, AUC 1; class c has no positive: left out of every average
    scores = torch.tensor(
        [[0.9, 0.1, 0.9], [0.8, 0.6, 0.2], [0.7, 0.2, 0.3], [0.6, 0.4, 0.4], [0.3, 0.5, 0.5], [0.2, 0.3, 0.6]]
    )
    targets = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.float32)
    metrics = class_metrics(scores, targets, 0.5, ["a", "b", "c"])
    assert metrics["AP/a"] == pytest.approx(5 / 6) and metrics["AP/b"] == pytest.approx(1.0) and "AP/c" not in metrics
    assert metrics["mAP"] == pytest.approx((5 / 6 + 1) / 2)  # torchmetrics' macro AP would be (5/6 + 1 + 0) / 3
    assert metrics["auc"] == pytest.approx((7 / 8 + 1) / 2)
    # at 0.5: a detects rows 0-3 (tp 2, fp 2): F1 = 4 / 6; b detects rows 1 and 4 (tp 2): F1 = 1
    assert metrics["f1"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["d_prime"] == pytest.approx(2**0.5 * float(torch.special.ndtri(torch.tensor(15 / 16, dtype=torch.float64))))


def test_top1_accuracy_counts_items_with_one_label():
    # annotation classes (x, y) are the checkpoint's columns 2 and 0 of 3
    scores = torch.tensor([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.5, 0.1, 0.4], [0.3, 0.3, 0.4]])
    targets = torch.tensor([[1, 0], [0, 1], [0, 1], [1, 1], [0, 0]], dtype=torch.float32)
    # rows 0-2 have one label: row 0 right (column 2 = x), row 1 right (column 0 = y), row 2 wrong (column 1)
    assert top1_accuracy(scores, targets, [2, 0]) == pytest.approx(2 / 3)
    assert np.isnan(top1_accuracy(scores[3:], targets[3:], [2, 0]))


def test_window_targets_and_aggregation_by_hand():
    # 1 s windows every 0.5 s over a 2 s recording: car (class 1) 0.1-0.5 s, bird (class 0) 1.0-1.9 s
    events = [(0.1, 0.5, 1), (1.0, 1.9, 0)]
    targets = window_targets(events, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), 1.0, 2)
    # [0.5, 1.5) holds 0.5 s of the 0.9 s bird (>= half of it), none of the car
    assert targets.tolist() == [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]
    scores = torch.tensor([[0.2, 0.9], [0.6, 0.3], [0.4, 0.0]])
    assert aggregate_windows(scores, "max").tolist() == pytest.approx([0.6, 0.9])
    assert aggregate_windows(scores, "mean").tolist() == pytest.approx([0.4, 0.4])
    with pytest.raises(ValueError, match="aggregate='median'"):
        aggregate_windows(scores, "median")


def test_unmatched_labels_are_named_with_the_checkpoint_classes():
    assert match_classes(["car", "bird"], ["bird", "dog", "car"]) == [2, 0]
    with pytest.raises(ValueError, match=r"\['owl'\] are not classes of the checkpoint \['bird', 'dog', 'car'\]"):
        match_classes(["bird", "owl"], ["bird", "dog", "car"])


# ---- end to end with the classifier trained on the built-in corpus ------------------------------------
# recording -> (seconds, [(label, onset, offset)]): events aligned with the 1 s windows, one window of two labels
RECORDINGS = {
    "rec/r0.wav": (3.0, [("harmonic_stack", 0.0, 1.0), ("lowband_noise", 2.0, 3.0)]),
    "rec/r1.wav": (2.5, [("lowband_noise", 1.0, 2.0)]),  # the last window [2, 3) is zero-padded past 2.5 s
    "rec/r2.wav": (2.0, [("harmonic_stack", 0.0, 1.0), ("lowband_noise", 0.0, 1.0)]),
    "rec/r3.wav": (2.0, []),
}
CLASSES = ["harmonic_stack", "lowband_noise"]


def write_soundscapes(root):
    """The RECORDINGS as noise with each event rendered as the built-in corpus does, and test.csv only."""
    rng = np.random.default_rng(3)
    rows = []
    for file, (seconds, events) in RECORDINGS.items():
        audio = 0.01 * rng.standard_normal(int(seconds * RATE))
        for label, onset, offset in events:
            start, stop = int(onset * RATE), int(offset * RATE)
            audio[start:stop] += 0.3 * render_event(label, rng, stop - start, RATE)
            rows.append([file, onset, offset, label])
        if not events:
            rows.append([file, "", "", ""])
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / file), audio.astype(np.float32), RATE, subtype="FLOAT")
    with (root / "test.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["file", "onset", "offset", "label"], *rows])
    return root


def recordings_config(checkpoint, root, run_dir, *overrides):
    # data.clip_seconds stays 10 s: the windows are the model's clip length (1 s)
    return compose_config("eval", [
        f"ckpt_path={checkpoint}", "data=events", f"data.root={root}", f"data.classes=[{','.join(CLASSES)}]",
        "data.background_class=quiet", "data.num_workers=0", f"data.check_cache={run_dir}/checks.sqlite",
        f"paths.output_dir={run_dir}", "throughput.repeats=1", "throughput.batch_size=2", "throughput.batch_sizes=[1,2]", *overrides,
    ])


def test_clip_classifier_on_annotated_recordings(trained_classifier, tmp_path):
    root = write_soundscapes(tmp_path / "soundscapes")  # no train.csv, no validation.csv: eval reads test.csv only
    results = evaluate(recordings_config(trained_classifier.best, root, tmp_path / "run", "recordings.aggregate=max"))

    # predictions.csv: one row per 1 s window, the window's labels, the scores of the model run on it
    rows = list(csv.DictReader((tmp_path / "run" / "predictions.csv").open()))
    model = load_classifier(trained_classifier.best)
    assert list(rows[0]) == ["id", "file", "start_s", "end_s", "labels", *model.class_names]
    assert [(row["id"], row["end_s"], row["labels"]) for row in rows] == [
        ("rec/r0@0.000", "1.000", "harmonic_stack"), ("rec/r0@1.000", "2.000", ""), ("rec/r0@2.000", "3.000", "lowband_noise"),
        ("rec/r1@0.000", "1.000", ""), ("rec/r1@1.000", "2.000", "lowband_noise"), ("rec/r1@2.000", "2.500", ""),
        ("rec/r2@0.000", "1.000", "harmonic_stack;lowband_noise"), ("rec/r2@1.000", "2.000", ""),
        ("rec/r3@0.000", "1.000", ""), ("rec/r3@1.000", "2.000", ""),
    ]
    written = torch.tensor([[float(row[name]) for name in model.class_names] for row in rows])
    audio = {file: torch.from_numpy(sf.read(str(root / file), dtype="float32")[0]) for file in RECORDINGS}
    windows = []
    for row in rows:
        start = int(float(row["start_s"]) * RATE)
        window = audio[row["file"].removeprefix(f"{root}/")][start : start + RATE]
        windows.append(torch.nn.functional.pad(window, (0, RATE - len(window))))
    with torch.no_grad():
        expected = model.scores(model(torch.stack(windows)))
    torch.testing.assert_close(written, expected, atol=1e-5, rtol=1e-4)

    # metrics: the hand-made targets above and in RECORDINGS, the scores just computed
    columns = [model.class_names.index(name) for name in CLASSES]
    segment_targets = torch.tensor([[name in row["labels"].split(";") for name in CLASSES] for row in rows], dtype=torch.float32)
    recording_targets = torch.tensor([[1, 1], [0, 1], [1, 1], [0, 0]], dtype=torch.float32)
    per_recording = [expected[0:3], expected[3:6], expected[6:8], expected[8:10]]
    recording_scores = torch.stack([scores.amax(dim=0) for scores in per_recording])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for level, scores, targets in (("segment", expected, segment_targets), ("recording", recording_scores, recording_targets)):
        hand = class_metrics(scores[:, columns], targets, 0.5, CLASSES)
        for name, value in hand.items():
            assert metrics[f"test/{level}/{name}"] == pytest.approx(value, abs=1e-4), (level, name)
        assert metrics[f"test/{level}/acc"] == pytest.approx(top1_accuracy(scores, targets, columns), abs=1e-6)
    # what the trained classifier does on its own two most reliable classes
    assert metrics["test/segment/mAP"] >= 0.9 and metrics["test/segment/acc"] == 1.0

    stored = read_results(tmp_path / "run")
    assert stored["task"] == "eval" and stored["metrics"] == metrics
    assert stored["monitor"] == {"name": "test/segment/mAP", "best": metrics["test/segment/mAP"]}
    assert stored["recordings"] == {"count": 4, "windows": 10, "window_s": 1.0, "hop_s": 1.0, "aggregate": "max", "threshold": 0.5, "classes": CLASSES}
    assert results["metrics"] == metrics


def test_mean_aggregate_and_overlapping_windows(trained_classifier, tmp_path):
    root = write_soundscapes(tmp_path / "soundscapes")
    evaluate(recordings_config(trained_classifier.best, root, tmp_path / "run", "recordings.aggregate=mean", "recordings.hop_seconds=0.5"))
    rows = list(csv.DictReader((tmp_path / "run" / "predictions.csv").open()))
    r1 = [(row["start_s"], row["labels"]) for row in rows if row["file"].endswith("r1.wav")]
    # lowband_noise 1-2 s: covers half of [0.5, 1.5) and [1.5, 2.5), all of [1, 2)
    assert r1 == [("0.000", ""), ("0.500", "lowband_noise"), ("1.000", "lowband_noise"), ("1.500", "lowband_noise")]
    model = load_classifier(trained_classifier.best)
    scores = torch.tensor([[float(row[name]) for name in model.class_names] for row in rows])
    files = [row["file"] for row in rows]
    means = torch.stack([scores[[i for i, f in enumerate(files) if f == name]].mean(dim=0) for name in dict.fromkeys(files)])
    columns = [model.class_names.index(name) for name in CLASSES]
    hand = class_metrics(means[:, columns], torch.tensor([[1, 1], [0, 1], [1, 1], [0, 0]], dtype=torch.float32), 0.5, CLASSES)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test/recording/mAP"] == pytest.approx(hand["mAP"], abs=1e-4)
    assert metrics["test/recording/f1"] == pytest.approx(hand["f1"], abs=1e-4)


def test_labels_the_checkpoint_does_not_know_are_an_error(trained_classifier, tmp_path):
    root = write_soundscapes(tmp_path / "soundscapes")
    config = recordings_config(trained_classifier.best, root, tmp_path / "run", "data.classes=[harmonic_stack,owl]")
    with pytest.raises(ValueError, match=r"\['owl'\] are not classes of the checkpoint \[.*'harmonic_stack'"):
        evaluate(config)
    with pytest.raises(ValueError, match="recordings.hop_seconds=2.0"):
        evaluate(recordings_config(trained_classifier.best, root, tmp_path / "run", "recordings.hop_seconds=2.0"))
