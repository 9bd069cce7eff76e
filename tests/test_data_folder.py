"""data=folder on a fixture of class subfolders (train/, validation/, optional test/)."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader

from fast_ast.data.folder import FolderDataModule
from fast_ast.data.validation import BadFilesError, UnknownLabelsError
from fast_ast.modules.checkpoint import load_classifier
from tests.fixtures.corpora import make_folder, write_bad, write_clip
from tests.fixtures.runs import build_datamodule, train_on


def test_label_map_from_sorted_folders_and_splits(tmp_path):
    root = make_folder(tmp_path / "f")
    (root / "train" / "owl" / ".DS_Store").write_bytes(b"\0\1")  # hidden files are not clips
    dm = build_datamodule(FolderDataModule, root, tmp_path)
    assert dm.class_names == ["cricket", "frog", "owl"]
    dm.setup()
    assert len(dm.clips["train"]) == 9 and len(dm.clips["val"]) == len(dm.clips["test"]) == 3
    assert {clip.id: clip.target for clip in dm.clips["val"]} == {"cricket/clip0.wav": 0, "frog/clip0.wav": 1, "owl/clip0.wav": 2}  # ids keep the extension
    assert {clip.path.split("/")[-3] for clip in dm.clips["test"]} == {"test"}
    flac = [clip for clip in dm.clips["train"] if clip.path.endswith(".flac")]
    assert len(flac) == 3 and dm.infos[flac[0].path].channels == 2
    assert dm.datasets["train"][0]["audio"].shape == (16000,)


def test_without_test_folder_the_test_split_is_validation(tmp_path):
    root = make_folder(tmp_path / "f", with_test=False)
    dm = build_datamodule(FolderDataModule, root, tmp_path)
    dm.setup()
    assert [c.path for c in dm.clips["test"]] == [c.path for c in dm.clips["val"]]


def test_cache_dir_and_worker_processes_give_the_same_clips(tmp_path):
    root = make_folder(tmp_path / "f")
    plain = build_datamodule(FolderDataModule, root, tmp_path / "a")
    cached = build_datamodule(FolderDataModule, root, tmp_path / "b", cache_dir=str(tmp_path / "cache"), check_cache=None, num_workers=2)
    plain.setup()
    cached.setup()
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 3  # the three FLAC clips, not the WAVs
    assert (tmp_path / "cache" / "file_checks.sqlite").is_file()
    batches = [next(iter(DataLoader(dm.plain_split("train"), batch_size=9, num_workers=dm.num_workers))) for dm in (plain, cached)]
    assert batches[0]["id"] == batches[1]["id"]
    torch.testing.assert_close(batches[0]["audio"], batches[1]["audio"], rtol=0, atol=1e-6)


def test_unknown_class_folder_and_bad_files(tmp_path):
    root = make_folder(tmp_path / "f")
    write_clip(root / "validation" / "bat" / "clip0.wav", 900.0)
    with pytest.raises(UnknownLabelsError, match="'bat'"):
        build_datamodule(FolderDataModule, root, tmp_path).setup()
    (root / "validation" / "bat" / "clip0.wav").unlink()
    (root / "validation" / "bat").rmdir()
    write_bad(root / "train" / "owl" / "notes.txt", "not_audio")
    write_bad(root / "train" / "frog" / "silent.wav", "nan")
    with pytest.raises(BadFilesError) as error:
        build_datamodule(FolderDataModule, root, tmp_path).setup()
    assert "owl/notes.txt: not audio" in str(error.value) and "frog/silent.wav: contains NaN" in str(error.value)
    dm = build_datamodule(FolderDataModule, root, tmp_path, on_bad_file="skip", report_dir=str(tmp_path / "run"))
    dm.setup()
    assert len(dm.clips["train"]) == 9
    assert {f["path"].split("/")[-1] for f in json.loads((tmp_path / "run" / "bad_files.json").read_text())["files"]} == {"notes.txt", "silent.wav"}


def test_train_end_to_end_saves_the_label_map(tmp_path):
    root = make_folder(tmp_path / "f")
    results = train_on(tmp_path / "run", "folder", root)
    assert results["status"] == "completed"
    model = load_classifier(results["checkpoints"]["last"])
    assert model.class_names == ["cricket", "frog", "owl"] and model.num_classes == 3


def test_invalid_settings_are_named(tmp_path):
    root = make_folder(tmp_path / "f", per_class=1)
    for key, value in (("on_bad_file", "ignore"), ("train_crop", "middle"), ("eval_crop", "end")):
        with pytest.raises(ValueError, match=f"data.{key} must be one of"):
            build_datamodule(FolderDataModule, root, tmp_path, **{key: value})
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        build_datamodule(FolderDataModule, tmp_path / "nowhere", tmp_path)
