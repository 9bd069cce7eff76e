"""experiments/gpu/check.sh end to end on the CPU at tiny sizes (--dry-run): every section runs and writes its JSON,
so the script cannot fail on the GPU machine for a typo. Also the speed suites' like-for-like checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fast_ast.bench import hf_train
from fast_ast.bench.memory import line_fit
from tests.helpers import REPO, compose_config

SECTIONS = ("train", "tome_eval", "frontend", "ddp", "memory")


def test_gpu_check_dry_run(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    process = subprocess.run(["bash", "experiments/gpu/check.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-5000:]
    status = json.loads((tmp_path / "check.json").read_text())
    assert status["dry_run"] and list(status["sections"]) == list(SECTIONS)
    assert all(entry["status"] == "ok" for entry in status["sections"].values())
    train = json.loads((tmp_path / "train.json").read_text())
    assert [(row["precision"], row["compile"]) for row in train["rows"]] == [("32-true", False), ("bf16-mixed", True)]
    assert train["headline"]["fp32_eager_it_s"] > 0 and train["headline"]["compile_s"] is not None
    tome = json.loads((tmp_path / "tome_eval.json").read_text())
    assert set(tome["tome_runs"]) == {"1", "2"}
    # 128 bins x 100 frames, 16x16 patches at stride 10: 2 + 12 x 9 = 110 tokens; r = 4 leaves 106 for the last block
    assert tome["tome_runs"]["2"]["rows"][-1]["tokens_per_layer"] == [110, 106]
    levers = tome["precision_levers"]["rows"]  # fp32, bf16, bf16 + ToMe: both change the logits, a little
    assert 0 < levers[1]["max_abs_logit_diff"] < 0.1 and levers[2]["max_abs_logit_diff"] > 0
    assert json.loads((tmp_path / "ddp.json").read_text())["results"]["status"] == "completed"
    memory = json.loads((tmp_path / "memory.json").read_text())
    assert [row["r"] for row in memory["rows"]] == [4] and memory["rows"][0]["peak_gb"]["2"] > 0
    assert "## memory: ok" in (tmp_path / "summary.md").read_text()


def test_line_fit_splits_fixed_and_per_clip_memory():
    assert line_fit([1, 2, 4], [5.0, 7.0, 11.0]) == pytest.approx((3.0, 2.0))


def test_hf_train_compares_the_same_model_on_the_same_clips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_config("bench", [
        "suite=hf_train", "device=cpu", "model.backbone.embed_dim=32", "model.backbone.depth=2", "model.backbone.num_heads=2",
        "hf_train_suite.clips=4", "hf_train_suite.step_repeats=1", "hf_train_suite.epochs=2", "hf_train_suite.project_r=[0,4]",
    ])
    result = hf_train.run(cfg)
    # transformers' ASTFeatureExtractor features vs the batched frontend, through the same weights: the same logits
    assert result["max_abs_logit_diff"] <= 1e-4
    assert [row["side"] for row in result["rows"]] == ["transformers", "fast_ast", "fast_ast_r4"]
    for row in result["rows"]:
        assert row["step_s"] > 0 and row["epoch_s"] > 0 and row["end_to_end_clips_per_s"] > 0
    assert (tmp_path / "hf_train_bench.json").is_file()
