"""data=speechcommands on a fixture in the Speech Commands v2 layout (word folders, lists, _background_noise_)."""

from __future__ import annotations

import json

import pytest
import torch

from fast_ast.data.audio_io import read_audio
from fast_ast.data.labels import packaged_label_csv, read_label_csv
from fast_ast.data.speechcommands import BackgroundMixer, SpeechCommandsDataModule
from fast_ast.data.validation import BadFilesError, UnknownLabelsError
from tests.fixtures.corpora import make_speechcommands, write_clip
from tests.fixtures.runs import build_datamodule, train_on


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return make_speechcommands(tmp_path_factory.mktemp("sc"))


def test_official_split_and_35_word_label_map(speech, tmp_path):
    dm = build_datamodule(SpeechCommandsDataModule, speech, tmp_path)
    assert dm.class_names == [row.display_name for row in read_label_csv(packaged_label_csv("speechcommands"))]
    assert len(dm.class_names) == 35 and dm.class_names[28] == "yes"
    dm.setup()
    speakers = {split: {clip.id.split("/")[1][:8] for clip in dm.clips[split]} for split in ("train", "val", "test")}
    assert speakers == {"train": {"00000000", "00000001", "00000002"}, "val": {"00000003"}, "test": {"00000004"}}
    assert len(dm.clips["train"]) == 12 and len(dm.clips["val"]) == len(dm.clips["test"]) == 4
    targets = {clip.id.split("/")[0]: clip.target for clip in dm.clips["val"]}
    assert targets == {w: dm.class_names.index(w) for w in ("yes", "no", "cat", "dog")}
    batch = next(iter(dm.val_dataloader()))
    assert batch["audio"].shape == (4, 16000) and batch["target"].tolist() == [dm.class_names.index(i.split("/")[0]) for i in batch["id"]]


def test_twelve_class_task(speech, tmp_path):
    dm = build_datamodule(SpeechCommandsDataModule, speech, tmp_path, task=12, unknown_fraction=1.0, silence_fraction=0.5)
    assert dm.class_names[:4] == ["_silence_", "_unknown_", "yes", "no"] and len(dm.class_names) == 12
    dm.setup()
    train = dm.clips["train"]
    count = lambda label: sum(clip.target == dm.class_names.index(label) for clip in train)  # noqa: E731
    assert (count("yes"), count("no"), count("_unknown_"), count("_silence_")) == (3, 3, 6, 3)
    silence = [clip for clip in dm.clips["val"] if clip.target == 0]
    assert len(silence) == 1 and silence[0].start == 8 * 16000  # segment 8 of a recording is validation
    item = dm.datasets["val"][dm.clips["val"].index(silence[0])]
    assert torch.equal(item["audio"], read_audio(silence[0].path, 16000)[8 * 16000 : 9 * 16000])
    few = build_datamodule(SpeechCommandsDataModule, speech, tmp_path, task=12)  # 10% of the 6 command clips
    few.setup()
    assert sum(clip.target == 1 for clip in few.clips["train"]) == 1 and sum(clip.target == 0 for clip in few.clips["train"]) == 1


def test_background_mixer_adds_a_scaled_window_of_a_noise_recording():
    torch.manual_seed(0)
    ramp = torch.arange(1000.0)
    mixer = BackgroundMixer([ramp], prob=1.0, volume=0.5)
    clean = torch.zeros(100)
    for _ in range(5):
        diff = mixer(clean)
        gain = (diff[1] - diff[0]).item()
        start = diff[0].item() / gain
        assert 0 < gain <= 0.5 and start == pytest.approx(round(start), abs=0.05) and 0 <= round(start) <= 900
        torch.testing.assert_close(diff, gain * ramp[round(start) : round(start) + 100], rtol=1e-4, atol=1e-4)
    assert torch.equal(BackgroundMixer([ramp], prob=0.0, volume=0.5)(clean), clean)


def test_noise_mixing_only_in_training(speech, tmp_path):
    dm = build_datamodule(SpeechCommandsDataModule, speech, tmp_path, background={"prob": 1.0, "volume": 0.1})
    dm.setup()
    assert isinstance(dm.datasets["train"].transform, BackgroundMixer) and len(dm.datasets["train"].transform.noises) == 2
    assert dm.datasets["val"].transform is None and dm.plain_split("train").transform is None
    clip = dm.clips["train"][0]
    assert not torch.equal(dm.datasets["train"][0]["audio"], read_audio(clip.path, 16000))


def test_unknown_words_and_bad_list_entries(tmp_path):
    root = make_speechcommands(tmp_path / "sc", per_word=5)
    write_clip(root / "banana" / "00000000_nohash_0.wav", 500.0)
    with pytest.raises(UnknownLabelsError, match="'banana'"):
        build_datamodule(SpeechCommandsDataModule, root, tmp_path)
    (root / "banana" / "00000000_nohash_0.wav").unlink()
    (root / "banana").rmdir()
    with (root / "validation_list.txt").open("a") as file:
        file.write("yes/deadbeef_nohash_9.wav\n")
    (root / "no" / "00000000_nohash_0.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(BadFilesError) as error:
        build_datamodule(SpeechCommandsDataModule, root, tmp_path).setup()
    assert "yes/deadbeef_nohash_9.wav: missing file" in str(error.value) and "no/00000000_nohash_0.wav: " in str(error.value)
    dm = build_datamodule(SpeechCommandsDataModule, root, tmp_path, on_bad_file="skip", report_dir=str(tmp_path / "run"))
    dm.setup()
    assert len(dm.clips["val"]) == 4 and len(dm.clips["train"]) == 11
    assert json.loads((tmp_path / "run" / "bad_files.json").read_text())["count"] == 2


def test_train_end_to_end(speech, tmp_path):
    results = train_on(tmp_path / "run", "speechcommands", speech, "data.task=12", "data.background.prob=0.8")
    assert results["status"] == "completed" and 0.0 <= results["metrics"]["test/acc"] <= 1.0
