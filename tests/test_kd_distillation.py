"""Distillation (fast_ast/kd/distillation.py), the loss object a classifier is given: loss wiring, mixup,
missing teacher rows, online teachers on the student's view, ensembles, unlabelled clips, stored views.

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

from fast_ast.frontend.augment import Augment
from fast_ast.kd.distillation import Distillation
from fast_ast.kd.store import TeacherLogits, save_logits
from fast_ast.kd.teachers import load_teacher
from fast_ast.kd.view_store import TeacherViews, dense_logits, id_hash, load_views, save_views, topk_logits
from fast_ast.modules.build import corpus_arguments
from fast_ast.modules.classifier import AudioClassifier
from tests.helpers import TINY_MODEL, compose_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BATCH = 4


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


def distillation(arguments, **kd) -> Distillation:
    config = {"name": "logits", "lambda": 0.5, "temperature": 2.0, "missing": "error", **kd}
    return Distillation(config, arguments["class_names"], arguments["multilabel"], arguments["sample_rate"], arguments["augment"])


def student(arguments, path, **kd) -> AudioClassifier:
    """A classifier given the distillation loss of teacher file(s) `path`, as build_model makes it."""
    return AudioClassifier(**arguments, distillation=distillation(arguments, path=path, **kd))


def train_loss(model: AudioClassifier, logits: torch.Tensor, batch: dict):
    return model.clip_loss(logits, batch)


def example_batch(num_classes, multilabel, ids):
    torch.manual_seed(1)
    target = (torch.rand(BATCH, num_classes) < 0.3).float() if multilabel else torch.tensor([0, 3, 1, 3])
    return {"audio": torch.randn(BATCH, 16000) * 0.1, "target": target, "id": ids}


PARTNER, WEIGHT = torch.tensor([2, 1, 0, 1]), torch.tensor([0.7, 1.0, 0.4, 0.9])


def mixed(batch: dict, num_classes: int) -> dict:
    """The batch as fast_ast.data.views.ViewDataset serves it under mixup with partners PARTNER, weights WEIGHT."""
    target = batch["target"]
    soft = target.float() if target.dim() == 2 else torch.nn.functional.one_hot(target, num_classes).float()
    w = WEIGHT.view(-1, 1)
    return {**batch, "target": w * soft + (1 - w) * soft[PARTNER], "mix_audio": batch["audio"][PARTNER],
            "mix_weight": WEIGHT, "mix_id": [batch["id"][i] for i in PARTNER.tolist()]}


@pytest.mark.parametrize("multilabel", [False, True])
def test_lambda_one_is_the_classifier_loss(arguments, tmp_path, multilabel):
    arguments = {**arguments, "multilabel": multilabel}
    ids = [f"train-{i:06d}" for i in range(BATCH)]
    path, _ = teacher_file(tmp_path, arguments["class_names"], ids)
    kd, plain = student(arguments, path, **{"lambda": 1.0}), AudioClassifier(**arguments)
    batch = example_batch(arguments["num_classes"], multilabel, ids)
    logits = torch.randn(BATCH, arguments["num_classes"])
    for example in (batch, mixed(batch, arguments["num_classes"])):
        ours, logs = train_loss(kd, logits, example)
        torch.testing.assert_close(ours, train_loss(plain, logits, example)[0])
        assert set(logs) == {"train/loss", "train/label_loss", "train/kd_loss", "train/kd_missing"}
        torch.testing.assert_close(logs["train/label_loss"], ours)


def test_teacher_targets_mixed_with_the_label_plan(arguments, tmp_path):
    ids = [f"train-{i:06d}" for i in range(BATCH)]
    path, teacher = teacher_file(tmp_path, arguments["class_names"], ids)
    lam, temperature = 0.3, 2.0
    model = student(arguments, path, **{"lambda": lam, "temperature": temperature})
    batch = example_batch(arguments["num_classes"], False, ids)
    logits = torch.randn(BATCH, arguments["num_classes"])
    loss, logs = train_loss(model, logits, mixed(batch, arguments["num_classes"]))

    s, t = logits.numpy().astype(np.float64), teacher.numpy().astype(np.float64)
    w, partner = WEIGHT.numpy()[:, None].astype(np.float64), PARTNER.numpy()
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
    loss, logs = train_loss(skip, logits, batch)
    per_clip_label = torch.nn.functional.cross_entropy(logits, batch["target"], reduction="none")
    # lambda 0: clips with a teacher row contribute the KD term only, the last one its label loss.
    kd_three = logs["train/kd_loss"] * 3
    torch.testing.assert_close(loss, (kd_three + per_clip_label[3]) / BATCH)
    assert float(logs["train/kd_missing"]) == 1.0
    assert skip.distillation.check_missing(path, ids + ["val-000000"]) == ["train-000003", "val-000000"]

    fail = student(arguments, path, missing="error")
    with pytest.raises(ValueError, match="no teacher logits for clips train-000003"):
        train_loss(fail, logits, batch)
    with pytest.raises(ValueError, match="1 of 4 training clips have no teacher logits: train-000003"):
        fail.distillation.check_missing(path, ids)


def test_config_and_class_errors(arguments, tmp_path):
    ids = ["train-000000"]
    path, _ = teacher_file(tmp_path, arguments["class_names"], ids)
    with pytest.raises(ValueError, match=r"kd.lambda \(the weight of the label loss\) must be a number in \[0, 1\]"):
        student(arguments, path, **{"lambda": 1.5})
    with pytest.raises(ValueError, match="kd.missing must be one of"):
        student(arguments, path, missing="ignore")
    with pytest.raises(ValueError, match="kd=teacher needs kd.ckpt_path"):
        distillation(arguments, name="teacher", path=None, ckpt_path=None)
    reordered = list(reversed(arguments["class_names"]))
    path, _ = teacher_file(tmp_path, reordered, ids)
    with pytest.raises(ValueError, match="another order"):
        student(arguments, path)
    path, _ = teacher_file(tmp_path, arguments["class_names"][:4], ids)
    with pytest.raises(ValueError, match=f"predicts 4 classes, the corpus has {arguments['num_classes']}"):
        student(arguments, path)


def save_teacher(arguments, path, embed_dim=64, **changes) -> AudioClassifier:
    torch.manual_seed(3)
    teacher = AudioClassifier(**{**arguments, "backbone": {**arguments["backbone"], "embed_dim": embed_dim}, **changes}).eval()
    torch.save({"state_dict": teacher.state_dict(), "hyper_parameters": dict(teacher.hparams)}, path)
    return teacher


VIEW_AUGMENT = {"freqm": 24, "timem": 20, "noise": 0.0, "time_shift": 0}


def view_batch(arguments, ids):
    batch = example_batch(arguments["num_classes"], False, ids)
    return {**batch, "view_seed": torch.tensor([11, 12, 13, 14])}


def test_online_teacher_scores_the_students_view(arguments, tmp_path):
    arguments = {**arguments, "augment": {**arguments["augment"], **VIEW_AUGMENT}}
    teacher = save_teacher(arguments, tmp_path / "teacher.ckpt")
    model = AudioClassifier(**arguments, distillation=distillation(arguments, name="teacher", ckpt_path=str(tmp_path / "teacher.ckpt")))
    model.train()
    online = model.distillation.teachers[0][1]
    assert not online.model.training and not any(p.requires_grad for p in online.model.parameters())
    assert not any(key.startswith("teacher") for key in model.state_dict())  # never saved with the student
    batch = view_batch(arguments, ["a", "b", "c", "d"])
    features = model.train_features(batch)
    assert not torch.equal(features, model.frontend(batch["audio"]))  # the view is augmented
    seen = []
    online.model.backbone.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    scored = online.view_logits(batch, model.augment)
    torch.testing.assert_close(seen[0], features, rtol=0, atol=0)  # same frontend settings: the student's features
    with torch.no_grad():
        torch.testing.assert_close(scored, teacher.backbone(features), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(scored, teacher(batch["audio"]), atol=1e-3)  # not the clean clip


def test_teacher_with_its_own_frontend_gets_the_same_view(arguments, tmp_path):
    """Other normalisation: the same audio and seeds through the teacher's frontend, so the masks fall on
    the same cells (a masked cell is 0 before normalisation: -mean / (2 std) after)."""
    arguments = {**arguments, "augment": {**arguments["augment"], **VIEW_AUGMENT}}
    features = {**arguments["features"], "norm_mean": 1.5, "norm_std": 2.0}
    save_teacher(arguments, tmp_path / "teacher.ckpt", features=features)
    dist = distillation(arguments, name="teacher", ckpt_path=str(tmp_path / "teacher.ckpt"))
    online = dist.teachers[0][1]
    augment = Augment(**arguments["augment"])
    student = AudioClassifier(**arguments)
    batch = view_batch(arguments, ["a", "b", "c", "d"])
    mine = augment.view(student.frontend, batch)
    theirs = augment.view(online.model.frontend, batch)
    fbank = student.frontend.features(batch["audio"])
    torch.testing.assert_close(theirs, (augment.mask(fbank, batch["view_seed"]) - 1.5) / 4.0, rtol=0, atol=0)
    masked_mine = mine == student.frontend.normalize(torch.zeros(()))
    masked_theirs = theirs == -1.5 / 4.0
    assert masked_mine.any() and torch.equal(masked_mine, masked_theirs)


def test_ensemble_averages_logits_of_every_source(arguments, tmp_path):
    ids = [f"train-{i:06d}" for i in range(BATCH)]
    first, a = teacher_file(tmp_path / "a", arguments["class_names"], ids, seed=0)
    second, b = teacher_file(tmp_path / "b", arguments["class_names"], ids, seed=1)
    save_teacher(arguments, tmp_path / "teacher.ckpt")
    lam, temperature = 0.0, 1.0
    model = student(arguments, [first, second], ckpt_path=str(tmp_path / "teacher.ckpt"), **{"lambda": lam, "temperature": temperature})
    batch = view_batch(arguments, ids)
    online = model.distillation.teachers[0][1].view_logits(batch, model.augment)
    logits = torch.randn(BATCH, arguments["num_classes"])
    loss, logs = train_loss(model, logits, batch)
    mean = ((a + b + online) / 3).double()
    kd = -(torch.softmax(mean, -1) * (torch.log_softmax(logits.double(), -1) - torch.log_softmax(mean, -1))).sum(-1)
    assert float(loss) == pytest.approx(float(kd.mean()), rel=1e-5)


def test_unlabelled_and_label_free_clips_train_on_the_teacher_alone(arguments, tmp_path):
    ids = [f"train-{i:06d}" for i in range(BATCH)]
    path, teacher = teacher_file(tmp_path, arguments["class_names"], ids)
    batch = {**example_batch(arguments["num_classes"], False, ids), "labelled": torch.tensor([True, False, True, False])}
    logits = torch.randn(BATCH, arguments["num_classes"])
    lam, temperature = 0.4, 2.0
    model = student(arguments, path, **{"lambda": lam, "temperature": temperature})
    loss, logs = train_loss(model, logits, batch)
    label = torch.nn.functional.cross_entropy(logits, batch["target"], reduction="none")
    p = torch.softmax(teacher / temperature, -1)
    kd = temperature**2 * (p * (p.log() - torch.log_softmax(logits / temperature, -1))).sum(-1)
    expected = torch.where(batch["labelled"], lam * label + (1 - lam) * kd, kd).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    free = student(arguments, path, label_free=True, **{"lambda": lam, "temperature": temperature})
    torch.testing.assert_close(train_loss(free, logits, batch)[0], kd.mean(), rtol=1e-5, atol=1e-6)
    plain = AudioClassifier(**arguments)  # no teacher: the labelled clips alone
    torch.testing.assert_close(train_loss(plain, logits, batch)[0], label[batch["labelled"]].mean(), rtol=1e-5, atol=1e-6)


def stored_views(tmp_path, class_names, topk: int = 0):
    torch.manual_seed(4)
    logits = torch.randn(2, BATCH, len(class_names)) * 3  # 2 views of 4 clips
    seeds = torch.arange(8).view(2, BATCH) + 100
    hashes = torch.tensor([[id_hash(f"train-{i:06d}") for i in range(BATCH)]] * 2)
    metadata = {"teacher": "random", "augment": json.dumps({"mixup": 0.0, "mixup_alpha": 10.0, "mixup_level": "waveform", "freqm": 0, "timem": 0, "noise": 0.0, "time_shift": 0})}
    if topk:
        values, indices = topk_logits(logits, topk)
        store = TeacherViews(seeds, hashes, list(class_names), metadata, topk_values=values, topk_indices=indices)
    else:
        store = TeacherViews(seeds, hashes, list(class_names), metadata, logits=logits)
    return save_views(tmp_path / f"views{topk}.safetensors", store), logits


def test_stored_views_lookup_full_and_top_k(arguments, tmp_path):
    names = arguments["class_names"]
    path, logits = stored_views(tmp_path, names)
    store = load_views(path)
    index, view = torch.tensor([3, 0, 2]), torch.tensor([1, 0, 1])
    ids = [f"train-{i:06d}" for i in index.tolist()]
    torch.testing.assert_close(store.lookup(index, view, ids, "x"), logits[view, index], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"other items than train-000009 \(clip 3, view 1\)"):
        store.lookup(index, view, ["train-000009", *ids[1:]], "kd.path=x")

    path, logits = stored_views(tmp_path, names, topk=3)
    store = load_views(path)
    assert store.topk_values.dtype == torch.float16 and store.topk_indices.dtype == torch.int16
    dense = store.lookup(index, view, ids, "x")
    for row, (i, v) in enumerate(zip(index.tolist(), view.tolist())):
        top = logits[v, i].topk(3)
        assert torch.isinf(dense[row]).sum() == len(names) - 3
        torch.testing.assert_close(dense[row][top.indices], top.values.half().float(), rtol=0, atol=0)
    assert torch.equal(dense_logits(torch.tensor([[2.0]]).half(), torch.tensor([[1]]), 3), torch.tensor([[float("-inf"), 2.0, float("-inf")]]))
    model = student(arguments, str(path))
    assert torch.equal(model.distillation.replay_seeds, torch.arange(8).view(2, BATCH) + 100)
    probs, present, _ = model.distillation.teacher_probs({"audio": torch.zeros(3, 10), "index": index, "view": view, "id": ids}, model.augment)
    assert present.all() and (probs[dense.isinf()] == 0).all()


def test_stored_views_need_the_students_augmentation(arguments, tmp_path):
    path, _ = stored_views(tmp_path, arguments["class_names"])
    arguments = {**arguments, "augment": {**arguments["augment"], "freqm": 24}}
    with pytest.raises(ValueError, match=r"other augment settings \(freqm: stored 0, student 24\)"):
        student(arguments, str(path))


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
        distillation(arguments, name="teacher", ckpt_path=str(directory), format="hf")
