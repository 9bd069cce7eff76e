"""Issue 17, schedules and losses, each as it was found: a per-step learning-rate trace of the multistep decay
against torch's MultiStepLR stepped per epoch (AST), cosine sized from a per-epoch batch-size list, model.loss=bce
on a single-label corpus, a weight-averaging window beyond max_epochs, SpecAugment wider than the input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from tests.helpers import compose_train, run_train

# 48 training clips: 3 steps per epoch at batch 16, 2 at batch 32
NO_EVAL = ("test=false", "callbacks.model_checkpoint.monitor=null", "++trainer.limit_val_batches=0")


class LrTrace(Callback):
    """Writes [[epoch, lr], ...] of every optimiser step (the rate the step uses) to `path`."""

    def __init__(self, path: str):
        self.path, self.trace = path, []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.trace.append([trainer.current_epoch, optimizer.param_groups[0]["lr"]])

    def on_train_end(self, trainer, pl_module) -> None:
        Path(self.path).write_text(json.dumps(self.trace))


def traced_run(tmp_path: Path, *overrides: str) -> list[tuple[int, float]]:
    trace = tmp_path / "lr.json"
    run_train(tmp_path, *NO_EVAL, f"+callbacks.lr_trace._target_={__name__}.LrTrace", f"+callbacks.lr_trace.path={trace}", *overrides)
    return [tuple(row) for row in json.loads(trace.read_text())]


def test_multistep_decay_applies_from_the_first_step_of_its_epoch(tmp_path):
    trace = traced_run(
        tmp_path, "trainer.max_epochs=4", "model.optim.lr=1e-3", "model.optim.schedule.warmup_steps=0",
        "model.optim.schedule.start_epoch=1", "model.optim.schedule.step_epochs=1", "model.optim.schedule.decay=0.5",
    )
    # AST: MultiStepLR(milestones=[1, 2, 3], gamma=0.5), scheduler.step() at each epoch's end
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    reference = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1, 2, 3], gamma=0.5)
    per_epoch = []
    for _ in range(4):
        per_epoch.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert [epoch for epoch, _ in trace] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [lr for _, lr in trace] == pytest.approx([per_epoch[epoch] for epoch, _ in trace], rel=1e-9)


def test_cosine_is_sized_from_the_whole_batch_size_schedule(tmp_path):
    trace = traced_run(
        tmp_path, "trainer.max_epochs=3", "data.batch_size=[16,32]", "model.optim.lr=1e-3",
        "model.optim.schedule.name=cosine", "model.optim.schedule.warmup_steps=0", "model.optim.schedule.min_lr_ratio=0.0",
    )
    total = 3 + 2 + 2  # Lightning's estimate from epoch 0 would be 9
    assert len(trace) == total
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * step / total)) for step in range(total)]
    assert [lr for _, lr in trace] == pytest.approx(expected, rel=1e-9)
    assert trace[-1][1] < 0.06e-3  # the last step runs at 5% of base, not 39%


def test_bce_loss_on_a_single_label_corpus():
    from fast_ast.modules.build import build_model
    from hydra.utils import instantiate

    cfg = compose_train(Path("/tmp/unused"), "model.loss=bce")
    model = build_model(cfg, instantiate(cfg.data))
    logits, target = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[0.0, 1.0, 0.0]])
    # AST's --loss BCE: mean over classes of -[y log s(x) + (1 - y) log(1 - s(x))]
    sig = torch.sigmoid(logits)
    expected = -(target * sig.log() + (1 - target) * (1 - sig).log()).mean()
    padded = torch.zeros(1, model.num_classes)
    padded[:, :3], targets = logits, torch.zeros(1, model.num_classes)
    targets[:, :3] = target
    sig_rest = -torch.log(torch.tensor(0.5)) * (model.num_classes - 3)
    expected_all = (expected * 3 + sig_rest) / model.num_classes
    assert float(model.label_loss(padded, targets)) == pytest.approx(float(expected_all), rel=1e-6)
    assert torch.allclose(model.scores(padded), torch.sigmoid(padded))
    with pytest.raises(Exception, match="model.loss must be auto, ce"):
        build_model(compose_train(Path("/tmp/unused"), "model.loss=hinge"), instantiate(cfg.data))


def test_bce_run_trains(tmp_path):
    results = run_train(tmp_path, "model.loss=bce", "test=false")
    assert math.isfinite(results["metrics"]["val/loss"])


def test_weight_averaging_window_beyond_max_epochs_is_refused(tmp_path):
    from fast_ast.train import train

    cfg = compose_train(tmp_path, "trainer.max_epochs=2", "callbacks.weight_averaging.start_epoch=1", "callbacks.weight_averaging.end_epoch=5")
    with pytest.raises(ValueError, match=r"callbacks.weight_averaging.end_epoch=5 is beyond trainer.max_epochs=2"):
        train(cfg)
    assert not (tmp_path / "checkpoints" / "averaged.ckpt").exists()


def test_specaugment_wider_than_the_input_is_refused_before_training(tmp_path):
    from fast_ast.train import train

    cfg = compose_train(tmp_path, "data.augment.timem=192", "data.features.target_length=100")
    with pytest.raises(Exception, match=r"data.augment.timem=192 is wider than the input's 100 \(data.features.target_length=100\)"):
        train(cfg)
    cfg = compose_train(tmp_path, "data.augment.freqm=200")
    with pytest.raises(Exception, match=r"data.augment.freqm=200 .*data.features.num_mel_bins"):
        train(cfg)
