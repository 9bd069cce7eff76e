"""data=events (annotated long recordings) and the frame-level EventClassifier (model=ast_events)."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate

from fast_ast.backbones.ast import time_tokens, unmerge_tokens
from fast_ast.data.event_targets import clip_targets, frame_targets
from fast_ast.data.events import EventsDataModule, read_annotations
from fast_ast.data.validation import BadFilesError, UnknownLabelsError
from fast_ast.modules.build import build_model
from fast_ast.modules.event_classifier import (
    EventClassifier,
    interpolate_frames,
    load_event_classifier,
)
from tests.fixtures.corpora import make_events, write_bad
from tests.fixtures.runs import build_datamodule, corpus_overrides, train_on
from tests.helpers import assert_close_scaled, compose_config

TINY_BACKBONE = {"name": "ast", "embed_dim": 32, "depth": 2, "num_heads": 2}


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    return make_events(tmp_path_factory.mktemp("events"))


def test_frame_targets_by_hand():
    # window [1, 2) s in 4 bins of 0.25 s
    events = [(0.9, 1.3, 0), (1.6, 1.65, 1), (1.70, 1.80, 1)]
    targets = frame_targets(events, start=1.0, seconds=1.0, bins=4, num_event_classes=2, background=True)
    expected = torch.tensor([[1, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 0]], dtype=torch.float32)
    assert torch.equal(targets, expected)  # 0.05 s of the first event in bin 1 < half a bin; short events need half their length
    assert torch.equal(clip_targets(targets), torch.tensor([1.0, 1.0, 1.0]))
    assert torch.equal(frame_targets([], 0.0, 1.0, 4, 2), torch.zeros(2, 4))


def test_annotation_errors_name_the_line(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("file,onset,offset,label\nr.wav,1.0,2.0,bird\nr.wav,3.0,2.5,car\n")
    with pytest.raises(ValueError, match="a.csv line 3: an event needs a label and 0 <= onset < offset"):
        read_annotations(path)
    path.write_text("file,start,end,label\n")
    with pytest.raises(ValueError, match=r"missing columns \['onset', 'offset'\]"):
        read_annotations(path)


def test_windows_and_targets(events, tmp_path):
    dm = build_datamodule(EventsDataModule, events, tmp_path, event_bins=10, background_class="background")
    assert dm.class_names == ["bird", "car", "background"] and dm.multilabel
    dm.setup()
    assert len(dm.datasets["train"]) == 3 + 3 + 2  # ceil(2.5), ceil(3.0), ceil(1.5) windows of 1 s
    val = dm.datasets["val"]
    assert len(val) == 2
    item = val[1]
    assert item["id"] == "rec/val0@1.000" and item["audio"].shape == (16000,)
    car = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 0, 0], dtype=torch.float32)  # car 1.2-1.8 s in bins of 0.1 s from 1.0 s
    assert torch.equal(item["frame_target"], torch.stack([torch.zeros(10), car, 1 - car]))
    assert torch.equal(item["target"], torch.tensor([0.0, 1.0, 1.0]))
    for index in range(3, 6):  # the 44.1 kHz recording of 3 s: random windows inside it
        sample = dm.datasets["train"][index]
        start = float(sample["id"].split("@")[1])
        assert sample["id"].startswith("rec/train1@") and 0.0 <= start <= 2.0
        assert sample["frame_target"].shape == (3, 10)
    batch = next(iter(dm.val_dataloader()))
    assert batch["frame_target"].shape == (2, 3, 10) and batch["target"].shape == (2, 3)


def test_unknown_labels_late_events_and_bad_recordings(tmp_path):
    root = make_events(tmp_path / "ev")
    (root / "validation.csv").write_text("file,onset,offset,label\nrec/val0.wav,0.1,0.5,train horn\n")
    with pytest.raises(UnknownLabelsError, match="'train horn'"):
        build_datamodule(EventsDataModule, root, tmp_path).setup()
    (root / "validation.csv").write_text("file,onset,offset,label\nrec/val0.wav,5.0,6.0,car\n")
    with pytest.raises(ValueError, match="val0.wav lasts 2.000 s but has an event 'car' at 5.0-6.0 s"):
        build_datamodule(EventsDataModule, root, tmp_path).setup()
    make_events(root)
    write_bad(root / "rec" / "train2.wav", "truncated")
    with pytest.raises(BadFilesError, match="train2.wav: truncated"):
        build_datamodule(EventsDataModule, root, tmp_path).setup()
    dm = build_datamodule(EventsDataModule, root, tmp_path, on_bad_file="skip", report_dir=str(tmp_path / "run"))
    dm.setup()
    assert len(dm.datasets["train"]) == 6
    assert json.loads((tmp_path / "run" / "bad_files.json").read_text())["count"] == 1


def test_interpolate_frames_by_hand():
    values = torch.tensor([[[0.0], [10.0], [20.0]]])  # [1, 3, 1] at times 1, 2, 3
    out = interpolate_frames(values, torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 1.5, 2.25, 3.0, 9.0]))
    assert out.flatten().tolist() == [0.0, 5.0, 12.5, 20.0, 20.0]


def test_unmerge_and_time_tokens_by_hand():
    final = torch.tensor([[[1.0], [2.0], [3.0], [4.0]]])  # cls, dist, two merged tokens
    source = torch.zeros(1, 4, 6)  # 6 input tokens: cls, dist, patches p0..p3
    source[0, 0, 0] = source[0, 1, 1] = 1
    source[0, 2, [2, 5]] = 1  # token 2 absorbed p0 and p3
    source[0, 3, [3, 4]] = 1
    assert unmerge_tokens(final, source).flatten().tolist() == [1.0, 2.0, 3.0, 4.0, 4.0, 3.0]
    tokens = torch.arange(2 + 6, dtype=torch.float32).view(1, 8, 1)  # grid f_dim 2 x t_dim 3, row-major (freq, time)
    assert time_tokens(tokens, (2, 3)).flatten().tolist() == [(2 + 5) / 2, (3 + 6) / 2, (4 + 7) / 2]


def event_model(tome=None) -> EventClassifier:
    torch.manual_seed(0)
    return EventClassifier(
        backbone=TINY_BACKBONE,
        num_classes=3,
        class_names=["a", "b", "c"],
        multilabel=True,
        sample_rate=16000,
        clip_samples=16000,
        features={"num_mel_bins": 128, "target_length": 100},
        augment={},
        optim={"lr": 1e-3},
        tome=tome,
    ).eval()


def test_event_model_frame_outputs_and_time_resolution():
    model = event_model()
    assert model.frame_hop_s == pytest.approx(0.1) and model.frame_offset_s == pytest.approx(0.0875)
    audio = torch.randn(2, 16000) * 0.1
    frames = model.frame_logits(audio)
    assert frames.shape == (2, 9, 3)  # t_dim of 100 frames with tstride 10
    torch.testing.assert_close(model.frame_times(9)[[0, 8]], torch.tensor([0.0875, 0.8875], dtype=torch.float64))
    assert_close_scaled(model(audio), model.outputs(model.frontend(audio))[0])  # readout vs full last block
    merged = event_model(tome={"r": 20})
    assert merged.backbone.token_reduction is not None and merged.backbone.token_reduction.trace_source
    merged_frames = merged.frame_logits(audio)
    assert merged_frames.shape == (2, 9, 3) and merged.backbone.token_reduction.source.shape[-1] == 2 + 12 * 9
    assert not torch.allclose(merged_frames, frames)
    torch.testing.assert_close(event_model(tome={"r": 0}).frame_logits(audio), frames)


def test_events_need_the_frame_model(events, tmp_path):
    cfg = compose_config("train", corpus_overrides(tmp_path, "events", events))
    with pytest.raises(ValueError, match="model=ast_events"):
        build_model(cfg, instantiate(cfg.data))


def test_train_end_to_end(events, tmp_path):
    results = train_on(tmp_path / "run", "events", events, "model=ast_events", "data.event_bins=10", "data.background_class=background")
    metrics = results["metrics"]
    assert results["monitor"]["name"] == "val/frame_mAP"
    for key in ("val/frame_mAP", "val/frame_F1", "val/frame_AP/bird", "val/frame_F1/car", "test/frame_AP/background", "val/mAP"):
        assert 0.0 <= metrics[key] <= 1.0, key
    model = load_event_classifier(results["checkpoints"]["last"])
    assert model.class_names == ["bird", "car", "background"] and model.frame_logits(torch.zeros(1, 16000)).shape == (1, 9, 3)
