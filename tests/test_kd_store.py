"""Teacher logits files (fast_ast/kd/store.py) and the importer for logits produced elsewhere."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from fast_ast.kd.importer import import_logits, main as importer_main
from fast_ast.kd.store import TeacherLogits, check_class_names, load_logits, save_logits

CLASSES = ["dog", "siren", "rain", "speech"]


def example_store(rows: int = 5) -> TeacherLogits:
    torch.manual_seed(0)
    ids = [f"train-{i:06d}" for i in range(rows)]
    return TeacherLogits(torch.randn(rows, len(CLASSES)), ids, list(CLASSES), {"teacher": "tiny AST", "splits": '["train"]'})


@pytest.mark.parametrize("suffix", [".safetensors", ".npy"])
def test_round_trip(tmp_path, suffix):
    store = example_store()
    path = save_logits(tmp_path / f"logits{suffix}", store)
    loaded = load_logits(path)
    torch.testing.assert_close(loaded.logits, store.logits, rtol=0, atol=0)
    assert loaded.ids == store.ids and loaded.class_names == CLASSES
    assert loaded.teacher == "tiny AST" and loaded.metadata["splits"] == '["train"]'


def test_files_hold_the_documented_layout(tmp_path):
    store = example_store()
    save_logits(tmp_path / "a.safetensors", store)
    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as handle:
        assert list(handle.keys()) == ["logits"]
        metadata = handle.metadata()
    assert json.loads(metadata["ids"]) == store.ids and json.loads(metadata["class_names"]) == CLASSES
    save_logits(tmp_path / "b.npy", store)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy", allow_pickle=False), store.logits.numpy())
    index = json.loads((tmp_path / "b.json").read_text())
    assert index["ids"] == store.ids and index["class_names"] == CLASSES and index["teacher"] == "tiny AST"


def test_lookup_by_clip_id():
    store = example_store()
    logits, present = store.lookup(["train-000003", "nowhere", "train-000000"], "cpu")
    assert present.tolist() == [True, False, True]
    torch.testing.assert_close(logits[0], store.logits[3])
    torch.testing.assert_close(logits[2], store.logits[0])
    assert torch.equal(logits[1], torch.zeros(len(CLASSES)))
    assert store.missing(["train-000001", "val-000001", "x"]) == ["val-000001", "x"]


def test_class_mismatches_are_named():
    with pytest.raises(ValueError, match="predicts 4 classes, the corpus has 3"):
        example_store().check_classes(CLASSES[:3], "kd.path=x")
    with pytest.raises(ValueError, match=r"another order\) at 0: teacher 'dog' vs corpus 'siren'"):
        example_store().check_classes(["siren", "dog", "rain", "speech"], "kd.path=x")
    with pytest.raises(ValueError, match="1: teacher 'siren' vs corpus 'bell'"):
        check_class_names(CLASSES, ["dog", "bell", "rain", "speech"], "x")


def test_bad_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="repeat clip ids: a"):
        TeacherLogits(torch.zeros(3, 4), ["a", "b", "a"], list(CLASSES))
    with pytest.raises(ValueError, match="3 teacher logits per clip for 4 class names"):
        TeacherLogits(torch.zeros(2, 3), ["a", "b"], list(CLASSES))
    save_logits(tmp_path / "l.npy", example_store())
    (tmp_path / "l.json").unlink()
    with pytest.raises(FileNotFoundError, match="clip-id index"):
        load_logits(tmp_path / "l.npy")
    with pytest.raises(ValueError, match="must end in one of"):
        save_logits(tmp_path / "l.pt", example_store())


# ---- importing EfficientAT-style predictions -----------------------------------------------------
def write_audioset_style_classes(path, names):
    """AudioSet's class_labels_indices.csv layout: index,mid,display_name."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "mid", "display_name"])
        for i, name in enumerate(names):
            writer.writerow([i, f"/m/{i:04d}", name])


def test_import_efficientat_npy_with_json_mapping(tmp_path):
    rng = np.random.default_rng(0)
    predictions = rng.normal(size=(4, len(CLASSES))).astype(np.float16)  # EfficientAT ships float16 logits
    np.save(tmp_path / "passt_logits.npy", predictions)
    mapping = {"audio/Yabc_0.000_10.000.mp3": 2, "audio/Ydef_30.000_40.000.mp3": 0, "audio/Yghi_5.000_15.000.mp3": 3}
    (tmp_path / "fname_to_index.json").write_text(json.dumps(mapping))
    write_audioset_style_classes(tmp_path / "class_labels_indices.csv", CLASSES)
    path = import_logits(
        tmp_path / "passt_logits.npy", tmp_path / "fname_to_index.json", tmp_path / "class_labels_indices.csv",
        tmp_path / "teacher.safetensors", ids="stem", teacher="PaSST ensemble",
    )
    store = load_logits(path)
    assert store.ids == ["Yabc_0.000_10.000", "Ydef_30.000_40.000", "Yghi_5.000_15.000"]
    assert store.class_names == CLASSES and store.teacher == "PaSST ensemble"
    np.testing.assert_allclose(store.logits.numpy(), predictions[[2, 0, 3]].astype(np.float32))


def test_import_csv_mapping_through_the_command(tmp_path):
    predictions = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "p.npy", predictions)
    (tmp_path / "map.csv").write_text("filename,index\nclips/a.wav,1\nclips/b.wav,2\n")
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    importer_main([
        "--logits", str(tmp_path / "p.npy"), "--index", str(tmp_path / "map.csv"), "--classes", str(tmp_path / "classes.txt"),
        "--ids", "name", "--output", str(tmp_path / "out.npy"),
    ])
    store = load_logits(tmp_path / "out.npy")
    assert store.ids == ["a.wav", "b.wav"]
    np.testing.assert_array_equal(store.logits.numpy(), predictions[[1, 2]])


def test_import_errors(tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((2, 4), dtype=np.float32))
    (tmp_path / "map.json").write_text(json.dumps({"a.wav": 0, "b.wav": 5}))
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES))
    with pytest.raises(ValueError, match=r"rows outside the 2 rows .*b.wav -> 5"):
        import_logits(tmp_path / "p.npy", tmp_path / "map.json", tmp_path / "classes.txt", tmp_path / "o.npy")
    (tmp_path / "map.json").write_text(json.dumps({"a.wav": 0}))
    (tmp_path / "three.txt").write_text("\n".join(CLASSES[:3]))
    with pytest.raises(ValueError, match="lists 3 classes, .* has 4 logits per clip"):
        import_logits(tmp_path / "p.npy", tmp_path / "map.json", tmp_path / "three.txt", tmp_path / "o.npy")
