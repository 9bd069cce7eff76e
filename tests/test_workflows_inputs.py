"""Issue 17, inputs: importer ids for Speech Commands (key_stem, and errors that name the matching rule with an
example id), an ESC-50-layout corpus with other categories (data.label_csv=from_meta), config keys a command
does not read (predict +precision=...)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fast_ast.data.esc50 import ESC50DataModule
from fast_ast.kd.importer import import_logits, id_rule_hint
from fast_ast.kd.store import load_logits
from tests.fixtures.corpora import make_esc50, write_clip
from tests.helpers import compose_config, run_module

SC_FILES = ["yes/0a7c2a8d_nohash_0.wav", "no/0a7c2a8d_nohash_0.wav", "yes/1b2c3d4e_nohash_1.wav"]


def write_teacher(tmp_path):
    np.save(tmp_path / "logits.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    (tmp_path / "index.json").write_text(json.dumps({name: row for row, name in enumerate(SC_FILES)}))
    (tmp_path / "classes.txt").write_text("yes\nno\n")


def test_key_stem_gives_speech_commands_ids(tmp_path):
    write_teacher(tmp_path)
    out = import_logits(tmp_path / "logits.npy", tmp_path / "index.json", tmp_path / "classes.txt", tmp_path / "t.safetensors", ids="key_stem")
    store = load_logits(out)
    assert store.ids == ["yes/0a7c2a8d_nohash_0", "no/0a7c2a8d_nohash_0", "yes/1b2c3d4e_nohash_1"]


def test_colliding_ids_name_the_rules_that_keep_them_apart(tmp_path):
    write_teacher(tmp_path)
    with pytest.raises(ValueError, match=r"--ids stem gives 1 clip id\(s\) to more than one file.*'0a7c2a8d_nohash_0'.*--ids key_stem .*gives 'yes/0a7c2a8d_nohash_0'"):
        import_logits(tmp_path / "logits.npy", tmp_path / "index.json", tmp_path / "classes.txt", tmp_path / "t.safetensors", ids="stem")
    assert not (tmp_path / "t.safetensors").exists()


def test_missing_ids_hint_names_the_matching_rule_and_examples():
    file_ids = [name for name in SC_FILES]  # imported with --ids key: '.wav' kept
    corpus = ["yes/0a7c2a8d_nohash_0", "no/0a7c2a8d_nohash_0", "yes/1b2c3d4e_nohash_1"]
    hint = id_rule_hint(file_ids, corpus)
    assert "'yes/0a7c2a8d_nohash_0.wav'" in hint and "'yes/0a7c2a8d_nohash_0'" in hint
    assert "--ids key_stem" in hint and "3 of the 3" in hint


def make_other_categories(root):
    """The ESC-50 layout with 2 categories of its own (targets 0, 1)."""
    rows = []
    for fold in range(1, 6):
        for target, category in enumerate(["hammer", "drill"]):
            name = f"{fold}-{fold}{target}-A-{target}.wav"
            write_clip(root / "audio" / name, 300.0 + 200 * target, 0.5)
            rows.append([name, fold, target, category, False, f"{fold}{target}", "A"])
    (root / "meta").mkdir(parents=True, exist_ok=True)
    with (root / "meta" / "esc50.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(rows)
    return root


def test_esc50_layout_with_other_categories(tmp_path):
    root = make_other_categories(tmp_path / "corpus")
    with pytest.raises(ValueError, match=r"2 unknown label\(s\).*data.label_csv=from_meta.*data.label_csv=<file>"):
        ESC50DataModule(root=str(root), clip_seconds=0.5)
    datamodule = ESC50DataModule(root=str(root), clip_seconds=0.5, label_csv="from_meta")
    assert datamodule.class_names == ["hammer", "drill"]
    # targets must run 0..n-1 (here 0, 1, 2, 10 of ESC-50's own): the message says which were found
    with pytest.raises(ValueError, match=r"class indices must run 0..3; found \[0, 1, 2, 10\]"):
        ESC50DataModule(root=str(make_esc50(tmp_path / "esc")), label_csv="from_meta")


def test_every_command_refuses_keys_it_does_not_read(tmp_path):
    from fast_ast.config_keys import unknown_keys

    required = {"eval": ["ckpt_path=x"], "predict": ["ckpt_path=x", "inputs=y"], "export": ["ckpt_path=x", "out=y"], "teacher": ["ckpt_path=x"]}
    for command in ("train", "eval", "predict", "export", "teacher", "stats", "bench"):
        assert unknown_keys(compose_config(command, required.get(command, [])), command) == [], command
        assert unknown_keys(compose_config(command, [*required.get(command, []), "+precison=bf16-mixed"]), command) == ["precison"]
    assert unknown_keys(compose_config("train", ["++throughput.repeat=3"]), "train") == ["throughput.repeat"]
    assert unknown_keys(compose_config("train", ["+experiment=esc50_ast", "++trainer.check_val_every_n_epoch=2"]), "train") == []
    # as it was found: predict ran with a key it does not read (then +precision; precision is a real key now,
    # so the same mistake today is a misspelt one) and ignored it
    process = run_module("fast_ast.predict", "ckpt_path=none.ckpt", f"inputs={tmp_path}", "+precison=16-true", f"hydra.run.dir={tmp_path}/run", check=False)
    assert process.returncode != 0
    assert "fast_ast.predict does not read the config key(s) precison" in process.stderr
