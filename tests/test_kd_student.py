"""KDStudent (fast_ast/modules/kd_student.py): loss wiring, mixup, missing teacher rows, online teachers.

Tiny AST (embed_dim 32, depth 1) on the built-in corpus's class list; no training here.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fast_ast.frontend.augment import MixPlan
from fast_ast.kd.store import TeacherLogits, save_logits
from fast_ast.kd.teachers import load_teacher
from fast_ast.modules.build import corpus_arguments
from fast_ast.modules.classifier import AudioClassifier
from fast_ast.modules.kd_student import KDStudent
from tests.helpers import TINY_MODEL, compose_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BATCH = 4
# KDStudent.training_loss logs train/kd_missing; called here without a Trainer, Lightning warns and skips it.
pytestmark = pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")


@pytest.fixture(scope="module")
def arguments():
    """AudioClassifier arguments of a tiny AST on the built-in corpus (as build_model passes them)."""
    cfg = compose_config("train", list(TINY_MODEL))
    model = OmegaConf.to_container(cfg.model, resolve=True)
    for key in ("_target_", "_recursive_"):
        model.pop(key)
    return {**corpus_arguments(instantiate(cfg.data)), **model, "tome": {}}


def teacher_file(tmp_path, class_names, ids, seed=0) -> tuple[str, torch.Tensor]:
    torch.manual_seed(seed)
    logits = torch.randn(len(ids), len(class_names)) * 3
    path = save_logits(tmp_path / "teacher.safetensors", TeacherLogits(logits, ids, list(class_names), {"teacher": "random"}))
    return str(path), logits


def student(arguments, path, **kd) -> KDStudent:
    config = {"name": "logits", "lambda": 0.5, "temperature": 2.0, "path": path, "missing": "error", **kd}
    return KDStudent(kd=config, **arguments)


def example_batch(num_classes, multilabel, ids):
    torch.manual_seed(1)
    target = (torch.rand(BATCH, num_classes) < 0.3).float() if multilabel else torch.tensor([0, 3, 1, 3])
    return {"audio": torch.randn(BATCH, 16000) * 0.1, "target": target, "id": ids}


PLAN = MixPlan(partner=torch.tensor([2, 1, 0, 1]), weight=torch.tensor([0.7, 1.0, 0.4, 0.9]))


@pytest.mark.parametrize("multilabel", [False, True])
def test_lambda_one_is_the_classifier_loss(arguments, tmp_path, multilabel):
    arguments = {**arguments, "multilabel": multilabel}
    ids = [f"train-{i:06d}" for i in range(BATCH)]
    path, _ = teacher_file(tmp_path, arguments["class_names"], ids)
    kd, plain = student(arguments, path, **{"lambda": 1.0}), AudioClassifier(**arguments)
    batch = example_batch(arguments["num_classes"], multilabel, ids)
    logits = torch.randn(BATCH, arguments["num_classes"])
    for plan in (None, PLAN):
        ours, logs = kd.training_loss(logits, batch, plan)
        torch.testing.assert_close(ours, plain.training_loss(logits, batch, plan)[0])
        assert set(logs) == {"train/loss", "train/label_loss", "train/kd_loss"}
        torch.testing.assert_close(logs["train/label_loss"], ours)


def test_teacher_targets_mixed_with_the_label_plan(arguments, tmp_path):
    ids = [f"train-{i:06d}" for i in range(BATCH)]
    path, teacher = teacher_file(tmp_path, arguments["class_names"], ids)
    lam, temperature = 0.3, 2.0
    model = student(arguments, path, **{"lambda": lam, "temperature": temperature})
    batch = example_batch(arguments["num_classes"], False, ids)
    logits = torch.randn(BATCH, arguments["num_classes"])
    loss, logs = model.training_loss(logits, batch, PLAN)

    s, t = logits.numpy().astype(np.float64), teacher.numpy().astype(np.float64)
    w, partner = PLAN.weight.numpy()[:, None].astype(np.float64), PLAN.partner.numpy()
    onehot = np.eye(arguments["num_classes"])[batch["target"].numpy()]
    soft = lambda x: np.exp(x - x.max(1, keepdims=True)) / np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)
    labels = w * onehot + (1 - w) * onehot[partner]
    p = soft(t / temperature)
    p = w * p + (1 - w) * p[partner]
    label = -(labels * np.log(soft(s))).sum(1)
    kd = temperature**2 * (p * (np.log(p) - np.log(soft(s / temperature)))).sum(1)
    assert float(loss) == pytest.approx((lam * label + (1 - lam) * kd).mean(), rel=1e-5)
    assert float(logs["train/kd_loss"]) == pytest.approx(kd.mean(), rel=1e-5)


def test_missing_rows_skip_or_fail(arguments, tmp_path):
    ids = [f"train-{i:06d}" for i in range(BATCH)]
    path, _ = teacher_file(tmp_path, arguments["class_names"], ids[:3])  # no row for train-000003
    batch = example_batch(arguments["num_classes"], False, ids)
    logits = torch.randn(BATCH, arguments["num_classes"])

    skip = student(arguments, path, missing="skip", **{"lambda": 0.0})
    loss, logs = skip.training_loss(logits, batch, None)
    per_clip_label = torch.nn.functional.cross_entropy(logits, batch["target"], reduction="none")
    # lambda 0: clips with a teacher row contribute the KD term only, the last one its label loss.
    kd_three = logs["train/kd_loss"] * 3
    torch.testing.assert_close(loss, (kd_three + per_clip_label[3]) / BATCH)
    assert skip.check_missing(ids + ["val-000000"]) == ["train-000003", "val-000000"]

    fail = student(arguments, path, missing="error")
    with pytest.raises(ValueError, match="no teacher logits for clips train-000003"):
        fail.training_loss(logits, batch, None)
    with pytest.raises(ValueError, match="1 of 4 training clips have no teacher logits: train-000003"):
        fail.check_missing(ids)


def test_config_and_class_errors(arguments, tmp_path):
    ids = ["train-000000"]
    path, _ = teacher_file(tmp_path, arguments["class_names"], ids)
    with pytest.raises(ValueError, match=r"kd.lambda \(the weight of the label loss\) must be a number in \[0, 1\]"):
        student(arguments, path, **{"lambda": 1.5})
    with pytest.raises(ValueError, match="kd.missing must be one of"):
        student(arguments, path, missing="ignore")
    reordered = list(reversed(arguments["class_names"]))
    path, _ = teacher_file(tmp_path, reordered, ids)
    with pytest.raises(ValueError, match="another order"):
        student(arguments, path)
    path, _ = teacher_file(tmp_path, arguments["class_names"][:4], ids)
    with pytest.raises(ValueError, match=f"predicts 4 classes, the corpus has {arguments['num_classes']}"):
        student(arguments, path)


def test_online_teacher_from_a_project_checkpoint(arguments, tmp_path):
    torch.manual_seed(3)
    teacher = AudioClassifier(**{**arguments, "backbone": {**arguments["backbone"], "embed_dim": 64}}).eval()
    path = tmp_path / "teacher.ckpt"
    torch.save({"state_dict": teacher.state_dict(), "hyper_parameters": dict(teacher.hparams)}, path)
    model = KDStudent(kd={"name": "teacher", "lambda": 0.5, "temperature": 1.0, "ckpt": str(path), "format": "auto"}, **arguments)
    model.train()
    assert not model.teacher.model.training
    assert not any(p.requires_grad for p in model.teacher.model.parameters())
    assert not any(key.startswith("teacher") for key in model.state_dict())  # never saved with the student
    batch = example_batch(arguments["num_classes"], False, ["a", "b", "c", "d"])
    logits, present = model.teacher_logits(batch)
    with torch.no_grad():
        torch.testing.assert_close(logits, teacher(batch["audio"]))
    assert present.all()


def hf_teacher_directory(tmp_path, class_names):
    """A tiny transformers AST and its feature extractor, saved with save_pretrained."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(2)
    config = ASTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128, num_mel_bins=128,
        max_length=100, id2label=dict(enumerate(class_names)), label2id={n: i for i, n in enumerate(class_names)},
    )
    model = ASTForAudioClassification(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    extractor = ASTFeatureExtractor(num_mel_bins=128, max_length=100, mean=-3.0, std=4.0)
    directory = tmp_path / "hf-teacher"
    model.save_pretrained(directory)
    extractor.save_pretrained(directory)
    return model, extractor, directory


def test_hugging_face_teacher_gives_transformers_logits(arguments, tmp_path):
    model, extractor, directory = hf_teacher_directory(tmp_path, arguments["class_names"])
    teacher = load_teacher(directory)
    assert teacher.class_names == arguments["class_names"] and teacher.identity["teacher_format"] == "hf"
    audio = torch.randn(2, 16000) * 0.1
    inputs = extractor([clip.numpy() for clip in audio], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits
    assert (teacher(audio) - expected).abs().max().item() < 1e-4

    config = json.loads((directory / "config.json").read_text())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(len(arguments["class_names"]))}
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="0: teacher 'LABEL_0' vs corpus"):
        KDStudent(kd={"name": "teacher", "lambda": 0.5, "temperature": 1.0, "ckpt": str(directory), "format": "hf"}, **arguments)
