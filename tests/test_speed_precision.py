"""Precision names (fast_ast.precision): bf16 autocast where it is asked for, float32 where it must stay,
for training (trainer.precision) and the `precision` key of eval, predict and teacher."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from fast_ast.backbones.ast import AST
from fast_ast.eval import evaluate
from fast_ast.frontend.fbank import FbankFrontend
from fast_ast.kd.store import load_logits
from fast_ast.precision import autocast, check_precision
from fast_ast.predict import predict
from fast_ast.teacher import write_teacher_logits
from fast_ast.tome import apply_tome
from tests.helpers import TINY_SYNTHETIC, compose_config, run_train


def test_autocast_names():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast("32-true", "cpu"):
        assert layer(x).dtype == torch.float32
    with autocast("bf16-mixed", "cpu"):
        assert layer(x).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision='bf16'.*choose one of"):
        autocast("bf16", "cpu")
    with pytest.raises(ValueError, match="trainer.precision=16-mixed needs a GPU"):
        check_precision("16-mixed", "cpu", key="trainer.precision")


def test_fbank_and_its_log_stay_float32_under_bf16():
    frontend = FbankFrontend(target_length=100)
    audio = torch.randn(2, 16000) * 0.1
    reference = frontend(audio)
    with autocast("bf16-mixed", "cpu"):
        features = frontend(audio)
    assert features.dtype == torch.float32
    assert torch.equal(features, reference)


def test_bf16_logits_are_close_to_float32_with_and_without_tome():
    torch.manual_seed(0)
    model = AST(6, input_fdim=32, input_tdim=64, embed_dim=64, depth=2, num_heads=2).eval()
    x = torch.randn(3, 64, 32)
    for r in (0, 4):
        apply_tome(model, r=r)
        with torch.no_grad():
            reference = model(x)
            with autocast("bf16-mixed", "cpu"):
                logits = model(x)
        assert logits.dtype == torch.bfloat16
        difference = (logits.float() - reference).abs().max().item()
        # bf16 keeps 8 significant bits: a relative error of a few 2^-8 over two blocks, never exact
        assert 0 < difference <= 0.05 * reference.abs().max().item() + 0.02, (r, difference)


@pytest.fixture(scope="module")
def bf16_trained(tmp_path_factory):
    """A tiny ToMe-AST trained one epoch with trainer.precision=bf16-mixed on the CPU (depth 2: merges matter)."""
    run_dir = tmp_path_factory.mktemp("bf16_run")
    results = run_train(run_dir, "trainer.precision=bf16-mixed", "model=ast_tome", "tome.r=8", "model.backbone.depth=2")
    return run_dir, results


def test_training_runs_in_bf16_mixed_on_the_cpu(bf16_trained):
    _, results = bf16_trained
    assert results["status"] == "completed"
    assert np.isfinite(results["metrics"]["val/loss"])


def read_scores(path, skip: int):
    with path.open() as handle:
        rows = list(csv.reader(handle))[1:]
    return np.array([[float(value) for value in row[skip:]] for row in rows])


def test_eval_precision_key(bf16_trained, tmp_path):
    run_dir, _ = bf16_trained
    checkpoint = run_dir / "checkpoints" / "last.ckpt"

    def run(precision):
        cfg = compose_config("eval", [
            f"ckpt_path={checkpoint}", *TINY_SYNTHETIC, f"paths.output_dir={tmp_path / precision}", "split=val",
            "trainer.enable_progress_bar=false", "throughput.repeats=1", "throughput.batch_size=2", f"precision={precision}",
        ])
        assert cfg.trainer.precision == precision  # one key: the loop's precision follows it
        return evaluate(cfg)

    fp32, bf16 = run("32-true"), run("bf16-mixed")
    assert bf16["precision"] == "bf16-mixed" and fp32["precision"] == "32-true"
    a, b = read_scores(tmp_path / "32-true" / "predictions.csv", 2), read_scores(tmp_path / "bf16-mixed" / "predictions.csv", 2)
    assert 0 < np.abs(a - b).max() <= 0.05  # softmax scores: bf16 ran, and stayed close
    assert bf16["metrics"]["val/loss"] == pytest.approx(fp32["metrics"]["val/loss"], abs=0.05)


def test_predict_and_teacher_precision_keys(bf16_trained, tmp_path):
    run_dir, _ = bf16_trained
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    sf.write(tmp_path / "long.wav", (np.random.default_rng(0).standard_normal(48000) * 0.1).astype(np.float32), 16000)
    windows = {}
    for precision in ("32-true", "bf16-mixed"):
        out = tmp_path / f"predict_{precision}"
        predict(compose_config("predict", [
            f"ckpt_path={checkpoint}", f"inputs={tmp_path / 'long.wav'}", f"paths.output_dir={out}", "device=cpu",
            "top_k=1", f"precision={precision}",
        ]))
        windows[precision] = read_scores(out / "predictions.csv", 4)
    assert 0 < np.abs(windows["32-true"] - windows["bf16-mixed"]).max() <= 0.05

    logits = {}
    for precision in ("32-true", "bf16-mixed"):
        cfg = compose_config("teacher", [
            *TINY_SYNTHETIC, f"ckpt_path={checkpoint}", "split=val", f"output={tmp_path / precision}.safetensors",
            f"paths.output_dir={tmp_path}", f"precision={precision}", "device=cpu",
        ])
        store = load_logits(write_teacher_logits(cfg))
        assert store.logits.dtype == torch.float32 and store.metadata["precision"] == precision
        logits[precision] = store.logits
    difference = (logits["32-true"] - logits["bf16-mixed"]).abs().max().item()
    assert 0 < difference <= 0.05 * logits["32-true"].abs().max().item() + 0.02


def test_bf16_on_a_cpu_that_emulates_it_warns(caplog, monkeypatch):
    import fast_ast.precision as precision

    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="fast_ast.precision"):
        check_precision("bf16-mixed", "cpu")
    assert "emulates bf16" in caplog.text
