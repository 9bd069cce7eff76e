"""Issue 17: the frontend runs in float32 under every trainer.precision Lightning accepts on CPU and hands the
backbone its dtype (16-true used to crash in log_mel: float vs Half)."""

from __future__ import annotations

import math

import pytest
import torch

from fast_ast.frontend.fbank import FbankFrontend
from tests.helpers import run_train


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cast_frontend_computes_in_float32_and_returns_the_model_dtype(dtype):
    reference = FbankFrontend(sample_rate=16000, num_mel_bins=32, target_length=50)
    cast = FbankFrontend(sample_rate=16000, num_mel_bins=32, target_length=50).to(dtype)  # as *-true precision does
    audio = torch.randn(2, 8000) * 0.1
    assert cast.mel_banks.dtype == torch.float32 and cast.window.dtype == torch.float32
    out = cast(audio.to(dtype))
    assert out.dtype == dtype
    # the same float32 computation, cast once at the end (the input itself was rounded to `dtype`)
    expected = reference(audio.to(dtype).float()).to(dtype)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "bf16-true", "16-mixed", "16-true"])
def test_training_runs_under_every_precision(tmp_path, precision):
    # 16-true keeps Adam's state in float16, where its eps (1e-8) rounds to 0 and the first update divides 0 by 0:
    # pure float16 training needs an optimiser without it (SGD here); the frontend is what this tests
    optimiser = ("model.optim.name=sgd",) if precision == "16-true" else ()
    results = run_train(
        tmp_path,
        *optimiser, f"trainer.precision={precision}", "trainer.accelerator=cpu", "test=false",
        "data.train_size=16", "data.val_size=8", "data.batch_size=8",
    )
    assert math.isfinite(results["metrics"]["val/loss"])
    assert 0.0 <= results["metrics"]["val/acc"] <= 1.0
