"""data=audioset on a fixture of AST-style datafiles (relative and absolute wav paths, FLAC 44.1 kHz stereo + WAV)."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import WeightedRandomSampler

from fast_ast.data.audioset import AudioSetDataModule, sample_weights
from fast_ast.data.validation import BadFilesError, UnknownLabelsError
from tests.fixtures.corpora import AUDIOSET_TRAIN, make_audioset, write_bad
from tests.fixtures.runs import build_datamodule, train_on


def audioset_dm(root, tmp_path, **kwargs):
    datafiles = dict(train_json=str(root / "datafiles" / "train_data.json"), val_json=str(root / "datafiles" / "eval_data.json"))
    return build_datamodule(AudioSetDataModule, root, tmp_path, **{**datafiles, **kwargs})


@pytest.fixture(scope="module")
def audioset(tmp_path_factory):
    return make_audioset(tmp_path_factory.mktemp("audioset"))


def test_datafiles_label_map_and_multi_hot_targets(audioset, tmp_path):
    dm = audioset_dm(audioset, tmp_path)
    assert dm.multilabel and dm.num_classes == 527 and dm.class_names[0] == "Speech" and dm.mid_index["/m/09x0r"] == 0
    dm.setup()
    assert [clip.id for clip in dm.clips["train"]] == ["a0", "a1", "a2", "a3", "a4", "a5"]
    assert [clip.target for clip in dm.clips["train"]] == [labels for _, labels in AUDIOSET_TRAIN]
    assert dm.clips["train"][0].path == str(audioset / "audio" / "a0.flac")  # relative to data.root
    assert [clip.id for clip in dm.clips["test"]] == [clip.id for clip in dm.clips["val"]] == ["e0", "e1", "e2"]
    item = dm.datasets["train"][1]
    assert item["audio"].shape == (16000,) and item["target"].shape == (527,)
    assert item["target"].nonzero().flatten().tolist() == [0, 137] and item["target"].sum() == 2


def test_balanced_sampler_uses_ast_sample_weights(audioset, tmp_path):
    label_sets = [labels for _, labels in AUDIOSET_TRAIN]
    w0, w1, w137, w300 = 1000 / 3.01, 1000 / 1.01, 1000 / 3.01, 1000 / 2.01  # label counts 3, 1, 3, 2
    expected = torch.tensor([w0, w0 + w137, w137, w0 + w1, w300, w137 + w300], dtype=torch.float64)
    torch.testing.assert_close(sample_weights(label_sets, 527), expected)
    dm = audioset_dm(audioset, tmp_path)
    dm.setup()
    sampler = dm.train_sampler()
    assert isinstance(sampler, WeightedRandomSampler) and sampler.replacement and sampler.num_samples == 6
    torch.testing.assert_close(sampler.weights, expected)
    assert audioset_dm(audioset, tmp_path, balanced_sampler=False).train_sampler() is None


def test_unknown_mids_and_malformed_datafiles(audioset, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"wav": "audio/a0.flac", "labels": "/m/09x0r,/m/nope"}]}))
    with pytest.raises(UnknownLabelsError, match="bad.json: 1 unknown label.*'/m/nope'"):
        audioset_dm(audioset, tmp_path, train_json=str(bad)).setup()
    bad.write_text(json.dumps({"data": [{"wav": "audio/a0.flac"}]}))
    with pytest.raises(ValueError, match="entry 0 needs string 'wav' and 'labels'"):
        audioset_dm(audioset, tmp_path, train_json=str(bad)).setup()


def test_clips_that_fail_are_reported_not_dropped(tmp_path):
    root = make_audioset(tmp_path / "as")
    write_bad(root / "audio" / "a2.wav", "not_audio")
    (root / "audio" / "a4.wav").unlink()
    with pytest.raises(BadFilesError) as error:
        audioset_dm(root, tmp_path).setup()
    assert "a2.wav: not audio" in str(error.value) and "a4.wav: missing file" in str(error.value)
    dm = audioset_dm(root, tmp_path, on_bad_file="skip", report_dir=str(tmp_path / "run"))
    dm.setup()
    assert [clip.id for clip in dm.clips["train"]] == ["a0", "a1", "a3", "a5"]
    assert len(dm.train_sampler().weights) == 4
    assert json.loads((tmp_path / "run" / "bad_files.json").read_text())["count"] == 2


def test_train_end_to_end(audioset, tmp_path):
    results = train_on(tmp_path / "run", "audioset", audioset)
    assert results["status"] == "completed" and results["monitor"]["name"] == "val/mAP"
    assert 0.0 <= results["metrics"]["val/mAP"] <= 1.0
