"""python -m fast_ast.eval: a checkpoint evaluated on a corpus split reproduces training's metrics."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
import torch

from fast_ast.data.synthetic import SyntheticClips
from fast_ast.eval import check_compatible, evaluate
from fast_ast.modules.checkpoint import load_classifier
from fast_ast.results import read_results
from tests.helpers import compose_config


def eval_config(run, run_dir, *overrides):
    # train_size=1: the synthetic val/test clips do not depend on the training split's size
    return compose_config("eval", [f"ckpt_path={run.best}", *run.data_overrides, "data.train_size=1",
                                   f"paths.output_dir={run_dir}", "trainer.enable_progress_bar=false",
                                   "throughput.repeats=1", "throughput.batch_size=2", *overrides])


def read_predictions(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_eval_reproduces_the_validation_metrics_of_training(trained_classifier, tmp_path):
    trained = trained_classifier.results["metrics"]
    results = evaluate(eval_config(trained_classifier, tmp_path, "split=val"))

    for name in ("val/acc", "val/mAP", "val/auc", "val/d_prime"):
        assert results["metrics"][name] == pytest.approx(trained[name], abs=1e-6), name
    assert results["metrics"]["val/loss"] == pytest.approx(trained["val/loss"], abs=1e-5)
    assert json.loads((tmp_path / "metrics.json").read_text()) == results["metrics"]
    assert read_results(tmp_path)["task"] == "eval" and results["monitor"] == {"name": "val/acc", "best": results["metrics"]["val/acc"]}
    assert results["tome"]["r"] == 0 and results["split"] == "val"

    # predictions.csv, checked against the corpus itself: ids, true labels, and the accuracy its scores give
    rows = read_predictions(tmp_path / "predictions.csv")
    names = load_classifier(trained_classifier.best).class_names
    assert list(rows[0]) == ["id", "labels", *names]
    val = SyntheticClips(100, 0, "val", 16000, 16000)
    assert [row["id"] for row in rows] == [f"val-{i:06d}" for i in range(100)]
    assert [row["labels"] for row in rows] == [names[label] for label in val.labels.tolist()]
    scores = torch.tensor([[float(row[name]) for name in names] for row in rows])
    assert torch.allclose(scores.sum(dim=1), torch.ones(100), atol=1e-4)
    accuracy = (scores.argmax(dim=1) == val.labels).float().mean().item()
    assert accuracy == pytest.approx(trained["val/acc"], abs=1e-6)


def test_eval_with_off_the_shelf_token_merging(trained_classifier, tmp_path):
    results = evaluate(eval_config(trained_classifier, tmp_path, "split=test", "tome.r=4"))
    assert results["tome"]["r"] == 4 and results["split"] == "test"
    assert set(results["metrics"]) >= {"test/acc", "test/mAP", "test/loss"}

    # the scores are those of the model run with r=4 (and differ from r=0)
    rows = read_predictions(tmp_path / "predictions.csv")
    names = list(rows[0])[2:]
    written = torch.tensor([[float(row[name]) for name in names] for row in rows])
    audio = SyntheticClips(8, 0, "test", 16000, 16000).audio
    merged, plain = load_classifier(trained_classifier.best, tome={"r": 4}), load_classifier(trained_classifier.best)
    with torch.no_grad():
        expected, unmerged = merged.scores(merged(audio)), plain.scores(plain(audio))
    assert torch.allclose(written, expected, atol=1e-4)  # probabilities, batch of 8 vs the eval batches
    assert not torch.allclose(written, unmerged, atol=1e-3)


def test_eval_refuses_a_corpus_with_other_classes(trained_classifier):
    model = load_classifier(trained_classifier.best)
    corpus = SimpleNamespace(class_names=list(reversed(model.class_names)), multilabel=False, sample_rate=16000, clip_samples=16000)
    with pytest.raises(ValueError, match="same names in another order"):
        check_compatible(model, corpus)
    corpus = SimpleNamespace(class_names=model.class_names, multilabel=False, sample_rate=22050, clip_samples=16000)
    with pytest.raises(ValueError, match="data.sample_rate=22050"):
        check_compatible(model, corpus)


def test_eval_split_must_exist(trained_classifier, tmp_path):
    with pytest.raises(ValueError, match="split='dev'"):
        evaluate(eval_config(trained_classifier, tmp_path, "split=dev"))
