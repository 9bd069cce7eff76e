"""End to end: a tiny teacher trained on the built-in corpus, its logits written with fast_ast.teacher
(clean, and as stored augmented views), smaller students distilled from the files (ToMe on), from the
teacher run online, from an ensemble, and with unlabelled clips. The consistency tests record every
augmented view (Augment.view) and compare the features bit for bit."""

from __future__ import annotations

import csv

import pytest
import torch

from fast_ast.frontend.augment import Augment
from fast_ast.kd.store import TeacherLogits, load_logits, save_logits
from fast_ast.kd.view_store import load_views
from fast_ast.modules.checkpoint import load_classifier, read_checkpoint
from fast_ast.modules.classifier import AudioClassifier
from fast_ast.teacher import write_teacher_logits
from tests.helpers import TINY_SYNTHETIC, compose_config, run_train

TEACHER = ("model.backbone.embed_dim=64", "model.backbone.num_heads=2", "trainer.max_epochs=2")
STUDENT = ("model=ast_tome", "tome.r=8", "model.backbone.depth=2", "logger=csv", "trainer.log_every_n_steps=1")


def logged(run_dir) -> dict[str, list[float]]:
    """Column -> values written by the CSV logger (empty cells left out)."""
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows if row[key] != ""] for key in rows[0]}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """(best checkpoint of a tiny trained teacher, its logits file over the training split)."""
    root = tmp_path_factory.mktemp("kd")
    results = run_train(root / "teacher", *TEACHER)
    checkpoint = results["checkpoints"]["best"]
    cfg = compose_config(
        "teacher", [*TINY_SYNTHETIC, f"ckpt_path={checkpoint}", f"output={root}/teacher_logits.safetensors", f"paths.output_dir={root}"]
    )
    return checkpoint, write_teacher_logits(cfg)


def test_teacher_logits_file(teacher):
    checkpoint, path = teacher
    store = load_logits(path)
    assert store.ids == [f"train-{i:06d}" for i in range(48)]
    assert str(checkpoint) in store.teacher and store.metadata["teacher_format"] == "project"
    model = load_classifier(checkpoint)
    assert store.class_names == model.class_names
    from fast_ast.data.synthetic import SyntheticClips

    clips = SyntheticClips(3, 0, "train", 16000, 16000)  # data seed 0, 1 s clips: the corpus's first clips
    with torch.no_grad():
        torch.testing.assert_close(store.logits[:3], model(clips.audio), rtol=1e-4, atol=1e-4)


def test_teacher_command_all_splits_to_npy(teacher, tmp_path):
    checkpoint, _ = teacher
    cfg = compose_config(
        "teacher", [*TINY_SYNTHETIC, f"ckpt_path={checkpoint}", "split=all", f"output={tmp_path}/all.npy", f"paths.output_dir={tmp_path}"]
    )
    store = load_logits(write_teacher_logits(cfg))
    assert (tmp_path / "all.json").is_file()
    sizes = {"train": 48, "val": 24, "test": 24}
    assert store.ids == [f"{split}-{i:06d}" for split, size in sizes.items() for i in range(size)]
    assert store.metadata["splits"] == '["train", "val", "test"]'


def test_tome_student_distils_from_the_file(teacher, tmp_path):
    checkpoint, path = teacher
    results = run_train(tmp_path, *STUDENT, "kd=logits", f"kd.path={path}", "kd.lambda=0.5", "kd.temperature=2.0")
    assert results["tokens"]["per_layer"] == [110, 102]  # 2 + 12 x 9 patch tokens, then 8 merged
    columns = logged(tmp_path)
    for key in ("train/loss", "train/label_loss", "train/kd_loss"):
        assert len(columns[key]) == 3 and all(value > 0 for value in columns[key])  # 48 clips / 16 per step
    for total, label, kd in zip(columns["train/loss"], columns["train/label_loss"], columns["train/kd_loss"]):
        assert total == pytest.approx(0.5 * label + 0.5 * kd, rel=1e-4)
    assert columns["train/kd_missing"] == [0.0]
    assert results["kd"]["name"] == "logits" and results["tome"]["r"] == 8

    best = results["checkpoints"]["best"]
    raw = read_checkpoint(best)  # weights_only=True
    assert "kd" not in raw["hyper_parameters"] and "distillation" not in raw["hyper_parameters"]
    assert torch.load(best, weights_only=True)["distillation"]["kd"]["path"] == str(path)  # a record only
    assert not any(key.startswith("teacher") for key in raw["state_dict"])
    plain = load_classifier(best)
    assert type(plain) is AudioClassifier and plain.backbone.token_reduction is not None
    for key, value in plain.backbone.state_dict().items():
        torch.testing.assert_close(value, raw["state_dict"]["backbone." + key], rtol=0, atol=0)


def test_missing_teacher_rows(teacher, tmp_path):
    _, path = teacher
    full = load_logits(path)
    partial = save_logits(tmp_path / "partial.npy", TeacherLogits(full.logits[:40], full.ids[:40], full.class_names, full.metadata))
    with pytest.raises(ValueError, match=r"8 of 48 training clips have no teacher logits: train-000040, train-000041"):
        run_train(tmp_path / "error", "kd=logits", f"kd.path={partial}")
    assert not (tmp_path / "error" / "checkpoints").exists()  # failed before the first training step

    run_train(tmp_path / "skip", "kd=logits", f"kd.path={partial}", "kd.missing=skip", "logger=csv")
    assert logged(tmp_path / "skip")["train/kd_missing"] == [8.0]


VIEW_AUGMENT = ("data.augment.freqm=24", "data.augment.timem=20", "data.augment.noise=0.3", "data.augment.time_shift=5", "data.augment.mixup=0.5")


@pytest.fixture
def recorded_views(monkeypatch):
    """Every Augment.view call: (frontend, index [B], view [B], features [B, T, F])."""
    calls = []
    original = Augment.view

    def record(self, frontend, batch):
        features = original(self, frontend, batch)
        calls.append((frontend, batch["index"].clone(), batch["view"].clone(), features.detach().clone()))
        return features

    monkeypatch.setattr(Augment, "view", record)
    return calls


def by_clip(calls) -> dict[tuple[int, int], torch.Tensor]:
    return {(i, v): features[row] for _, index, view, features in calls for row, (i, v) in enumerate(zip(index.tolist(), view.tolist()))}


def test_student_replays_the_stored_views_bit_for_bit(teacher, tmp_path, recorded_views):
    checkpoint, _ = teacher
    cfg = compose_config("teacher", [*TINY_SYNTHETIC, *VIEW_AUGMENT, f"ckpt_path={checkpoint}", "views=2", "topk=4",
                                     f"output={tmp_path}/views.safetensors", f"paths.output_dir={tmp_path}"])
    path = write_teacher_logits(cfg)
    scored = by_clip(recorded_views)
    assert len(scored) == 2 * 48  # every clip, both views
    store = load_views(path)
    assert store.topk_values.shape == (2, 48, 4) and store.metadata["views"] == "2"
    assert not torch.equal(store.view_seeds[0], store.view_seeds[1])
    recorded_views.clear()

    run_train(tmp_path / "student", *VIEW_AUGMENT, "kd=logits", f"kd.path={path}", "trainer.max_epochs=3")
    epochs = [recorded_views[i:i + 3] for i in range(0, 9, 3)]  # 48 clips / 16 per batch = 3 steps per epoch
    for epoch, calls in enumerate(epochs):
        assert {int(v) for _, _, view, _ in calls for v in view} == {epoch % 2}  # epoch e replays view e mod 2
    seen = by_clip(recorded_views)
    assert set(seen) == set(scored)
    for key, features in seen.items():
        torch.testing.assert_close(features, scored[key], rtol=0, atol=0)  # the features the teacher scored
    assert not torch.equal(seen[(0, 0)], seen[(0, 1)])  # the two views differ


def test_online_teacher_scores_the_students_features(teacher, tmp_path, recorded_views):
    checkpoint, _ = teacher
    results = run_train(tmp_path, *VIEW_AUGMENT, "kd=teacher", f"kd.ckpt_path={checkpoint}", "logger=csv", "trainer.log_every_n_steps=1")
    columns = logged(tmp_path)
    assert len(columns["train/kd_loss"]) == 3 and "train/kd_missing" not in columns
    assert results["kd"]["name"] == "teacher"
    assert len(recorded_views) == 6  # per step: the student's view, then the teacher's
    for (student, index, _, mine), (teacher_frontend, same, _, theirs) in zip(recorded_views[::2], recorded_views[1::2]):
        assert student is not teacher_frontend and torch.equal(index, same)
        torch.testing.assert_close(theirs, mine, rtol=0, atol=0)


def test_ensemble_and_unlabelled_clips(teacher, tmp_path):
    checkpoint, path = teacher
    results = run_train(tmp_path / "semi", "kd=teacher", f"kd.ckpt_path={checkpoint}", f"kd.path=[{path}]",
                        "data.labelled_fraction=0.25", "logger=csv", "trainer.log_every_n_steps=1")
    assert results["status"] == "completed"
    results = run_train(tmp_path / "free", "kd=logits", f"kd.path={path}", "kd.label_free=true", "logger=csv", "trainer.log_every_n_steps=1")
    columns = logged(tmp_path / "free")
    assert columns["train/label_loss"] == [0.0, 0.0, 0.0]
    assert columns["train/loss"] == pytest.approx(columns["train/kd_loss"], rel=1e-6)  # the teacher term alone
