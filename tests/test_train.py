"""End-to-end training: `python -m fast_ast.train` writes results.json and a loadable checkpoint."""

from __future__ import annotations

import json

import torch

from fast_ast.callbacks.weight_averaging import EpochWeightAveraging
from fast_ast.modules.checkpoint import load_classifier
from fast_ast.results import read_results
from tests.helpers import TINY_TRAIN, run_module, run_train

RESULT_KEYS = {"version", "task", "status", "run_dir", "overrides", "monitor", "metrics", "checkpoints", "params", "tokens", "throughput", "tome", "kd", "wall_time_s"}


def test_train_command_writes_results_and_checkpoints(tmp_path):
    run_dir = tmp_path / "run"
    process = run_module("fast_ast.train", *TINY_TRAIN, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}")
    assert "clips/s" in process.stdout and "run directory" in process.stdout
    results = json.loads((run_dir / "results.json").read_text())
    assert RESULT_KEYS <= set(results)
    assert results["status"] == "completed" and results["task"] == "train"
    assert "trainer.max_epochs=2" in results["overrides"]
    metrics = results["metrics"]
    for key in ("val/acc", "val/mAP", "val/auc", "test/acc", "test/mAP", "test/auc"):
        assert 0.0 <= metrics[key] <= 1.0, key
    for stage in ("val", "test"):
        assert metrics[f"{stage}/loss"] > 0.0
        # d' = sqrt(2) * probit(AUC) (AST's d_prime; AUC kept inside (0, 1)), so it follows from the logged AUC
        expected = 2**0.5 * torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(metrics[f"{stage}/auc"], dtype=torch.float64).clamp(1e-6, 1 - 1e-6))
        assert abs(metrics[f"{stage}/d_prime"] - float(expected)) <= 1e-4 * max(1.0, abs(float(expected))), stage
    assert results["monitor"]["name"] == "val/acc"
    assert results["throughput"]["clips_per_s"] > 0 and results["throughput"]["device"].startswith("cpu")
    assert results["tokens"]["input"] == 2 + 12 * 9
    assert results["params"]["total"] == results["params"]["trainable"] > 0
    best, last = results["checkpoints"]["best"], results["checkpoints"]["last"]
    model = load_classifier(best)
    assert model.class_names[0] == "pure_tone" and model.num_classes == 10
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1
    assert read_results(run_dir)["metrics"] == results["metrics"]


def test_weight_averaging_averages_the_end_of_epoch_weights(tmp_path):
    results = run_train(tmp_path, "trainer.max_epochs=3", "callbacks.weight_averaging.start_epoch=2", "callbacks.weight_averaging.end_epoch=3", "logger=csv")
    averaged = torch.load(results["checkpoints"]["averaged"], map_location="cpu", weights_only=True)["state_dict"]
    last = torch.load(results["checkpoints"]["last"], map_location="cpu", weights_only=True)["state_dict"]
    key = "backbone.mlp_head.1.weight"
    assert not torch.equal(averaged[key], last[key])


def test_weight_averaging_callback_math():
    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(2))

    class FakeTrainer:
        current_epoch = 0

    callback, module, trainer = EpochWeightAveraging(start_epoch=2, end_epoch=3), Holder(), FakeTrainer()
    for epoch, value in enumerate([1.0, 2.0, 4.0, 8.0]):
        trainer.current_epoch = epoch
        module.w.data.fill_(value)
        callback.on_train_epoch_end(trainer, module)
    # epochs 2 and 3 (1-based) had weights 2 and 4
    torch.testing.assert_close(callback.average["w"], torch.full((2,), 3.0))
    assert callback.count == 2


def test_batch_size_schedule_trains(tmp_path):
    results = run_train(tmp_path, "trainer.max_epochs=2", "data.batch_size=[8,24]")
    assert results["status"] == "completed"


def test_a_seeded_run_repeats_exactly(tmp_path):
    # same seed, same machine: the same metrics and weights (the README's reruns rely on this)
    first = run_train(tmp_path / "first", "seed=7")
    second = run_train(tmp_path / "second", "seed=7")
    assert first["metrics"] == second["metrics"]
    weights = [torch.load(run["checkpoints"]["last"], map_location="cpu", weights_only=True)["state_dict"] for run in (first, second)]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    other = run_train(tmp_path / "other", "seed=8")
    assert other["metrics"] != first["metrics"]  # the seed is what decides
