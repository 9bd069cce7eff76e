"""The comparison benchmarks run and compare like with like (same results, to float rounding).

Not timed tests: speed is never asserted here, only that each suite measures equivalent computations
and reports every field the README's tables quote.
"""

from __future__ import annotations

import os

from fast_ast.bench import frontend, hf
from tests.helpers import compose_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_hf_suite_compares_equal_models():
    cfg = compose_config("bench", [
        "suite=hf", "device=cpu", "hf_suite.backbone=mini", "hf_suite.input_tdim=64", "hf_suite.num_classes=7",
        "hf_suite.batch_sizes=[1,3]", "hf_suite.warmup=0", "hf_suite.repeats=1",
    ])
    result = hf.run(cfg)
    assert result["tokens"] == 2 + 8 * 4  # mini: 16x16 patches at stride 16 over 128 bins x 64 frames
    assert [row["batch_size"] for row in result["rows"]] == [1, 3]
    for row in result["rows"]:
        assert row["max_abs_logit_diff"] <= 1e-4
        assert row["fast_ast_s"] > 0 and row["transformers_s"] > 0 and row["speedup"] > 0


def test_frontend_suite_compares_equal_features():
    cfg = compose_config("bench", [
        "suite=frontend", "device=cpu", "frontend_suite.warmup=0", "frontend_suite.repeats=1",
        "frontend_suite.cases=[{batch_size: 5, seconds: 10.0}, {batch_size: 3, seconds: 0.5}]",
    ])
    result = frontend.run(cfg)
    assert [(row["batch_size"], row["seconds"]) for row in result["rows"]] == [(5, 10.0), (3, 0.5)]
    for row in result["rows"]:
        assert row["max_abs_diff"] <= 1e-3
        assert min(row["fbank_s"], row["one_pass_s"], row["kaldi_loop_s"]) > 0
