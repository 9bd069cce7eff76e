"""data=esc50 on a fixture in the ESC-50 release layout (audio/*.wav at 44.1 kHz, meta/esc50.csv)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from fast_ast.data.esc50 import ESC50DataModule
from fast_ast.data.folds import fold_summary, main as folds_main
from fast_ast.data.validation import BadFilesError, UnknownLabelsError
from fast_ast.results import write_results
from tests.fixtures.corpora import make_esc50, write_bad
from tests.fixtures.runs import build_datamodule, train_on


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    return make_esc50(tmp_path_factory.mktemp("esc50"))


def test_folds_splits_and_label_map(esc50, tmp_path):
    dm = build_datamodule(ESC50DataModule, esc50, tmp_path, fold=2)
    assert dm.class_names == ["dog", "rooster", "pig", "rain"]  # ESC-50 targets 0, 1, 2, 10 in target order
    dm.setup()
    folds = {split: sorted({clip.id.split("-")[0] for clip in dm.clips[split]}) for split in ("train", "val", "test")}
    assert folds == {"train": ["1", "3", "4", "5"], "val": ["2"], "test": ["2"]}
    assert {clip.id: clip.target for clip in dm.clips["test"]} == {"2-100020-A-0": 0, "2-100021-A-1": 1, "2-100022-A-2": 2, "2-100030-A-10": 3}
    batch = next(iter(dm.val_dataloader()))
    assert batch["audio"].shape == (4, 16000) and batch["target"].dtype == torch.long
    assert dm.infos[dm.clips["test"][0].path].rate == 44100

    separate = build_datamodule(ESC50DataModule, esc50, tmp_path, fold=2, val_fold=5)
    separate.setup()
    assert {c.id[0] for c in separate.clips["train"]} == {"1", "3", "4"} and {c.id[0] for c in separate.clips["val"]} == {"5"}


def test_esc10_subset(esc50, tmp_path):
    dm = build_datamodule(ESC50DataModule, esc50, tmp_path, fold=1, subset="esc10")
    assert dm.class_names == ["dog", "rooster", "rain"]
    dm.setup()
    assert sorted({clip.target for clip in dm.clips["train"]}) == [0, 1, 2]
    assert all(not clip.id.endswith("-2") for clip in dm.clips["train"])  # pig is not in ESC-10


def test_metadata_errors_name_the_row_or_label(esc50, tmp_path):
    root = tmp_path / "esc"
    make_esc50(root, targets=(0, 1))
    meta = root / "meta" / "esc50.csv"
    rows = list(csv.reader(meta.open()))
    rows[3][3] = "pig"  # target 0 but category pig
    csv.writer(meta.open("w", newline="")).writerows(rows)
    with pytest.raises(ValueError, match=r"esc50.csv line 4: target 0 does not match category 'pig'"):
        build_datamodule(ESC50DataModule, root, tmp_path)
    rows[3][3] = "dragon"
    csv.writer(meta.open("w", newline="")).writerows(rows)
    with pytest.raises(UnknownLabelsError, match="'dragon'"):
        build_datamodule(ESC50DataModule, root, tmp_path)


def test_bad_files_error_then_skip(tmp_path):
    root = make_esc50(tmp_path / "esc")
    write_bad(root / "audio" / "3-100031-A-1.wav", "empty")
    write_bad(root / "audio" / "4-100040-A-0.wav", "zero_length")
    with pytest.raises(BadFilesError) as error:
        build_datamodule(ESC50DataModule, root, tmp_path).setup()
    assert "3-100031-A-1.wav: empty file" in str(error.value) and "4-100040-A-0.wav: zero length" in str(error.value)
    dm = build_datamodule(ESC50DataModule, root, tmp_path, on_bad_file="skip", report_dir=str(tmp_path / "skip"))
    dm.setup()
    assert len(dm.clips["train"]) == 14 and "3-100031-A-1" not in {c.id for c in dm.clips["train"]}
    report = json.loads((tmp_path / "skip" / "bad_files.json").read_text())
    assert sorted(f["reason"] for f in report["files"]) == ["empty file (0 bytes)", "zero length"]


def test_train_end_to_end(esc50, tmp_path):
    results = train_on(tmp_path / "run", "esc50", esc50, "data.fold=3")
    assert results["status"] == "completed" and results["monitor"]["name"] == "val/acc"
    assert 0.0 <= results["metrics"]["test/acc"] <= 1.0
    hparams = torch.load(results["checkpoints"]["last"], map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hparams["class_names"] == ["dog", "rooster", "pig", "rain"] and hparams["clip_samples"] == 16000


def test_fold_summary_mean_and_sample_std(tmp_path, capsys):
    for fold, accuracy in enumerate([0.5, 0.7, 0.9]):
        (tmp_path / str(fold)).mkdir()
        write_results(tmp_path / str(fold), {"task": "train", "metrics": {"test/acc": accuracy}})
    summary = fold_summary([tmp_path / str(k) for k in range(3)])
    assert summary["mean"] == pytest.approx(0.7) and summary["std"] == pytest.approx(0.2) and summary["n"] == 3
    folds_main([str(tmp_path)])
    assert "test/acc: 0.7000 +- 0.2000 over 3 folds" in capsys.readouterr().out
    with pytest.raises(KeyError, match="val/mAP"):
        fold_summary([tmp_path / "0"], "val/mAP")
