"""Token reduction beyond ToMe (fast_ast.tome): attention pruning (EViT), temporal merging, structured
patchout, the budgeted schedule search, and eval sweeps in the report. Hand-computed cases, parity with
the plain model, gradients, FLOP formulas against torch's counter, and tiny end-to-end runs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from fast_ast.backbones.ast import AST
from fast_ast.backbones.attention import block_forward
from fast_ast.measure.tokens import tokens_per_layer
from fast_ast.modules.checkpoint import load_classifier
from fast_ast.report import report
from fast_ast.tome import TokenReduction, apply_tome, plan_reduction
from fast_ast.tome.cost import peak_forward_bytes
from fast_ast.tome.flops import ast_forward_flops
from fast_ast.tome.patchout import structured_patchout
from fast_ast.tome.prune import kept_count, prefix_attention, prune_and_fuse, top_k_pruning
from fast_ast.tome.search import greedy_search
from fast_ast.tome.temporal import merge_columns_wavg, neighbour_matching
from fast_ast.tune_reduction import tune
from tests.helpers import compose_config, run_module, run_train


def tiny_ast(depth: int = 3, **kwargs) -> AST:
    """32 bins x 48 frames, patch 16, stride 8 -> 3 x 5 patches + 2 prefix tokens = 17 tokens."""
    torch.manual_seed(0)
    options = dict(num_classes=4, input_fdim=32, input_tdim=48, fstride=8, tstride=8, embed_dim=32, depth=depth, num_heads=2)
    options.update(kwargs)
    return AST(**options).eval()


# ---- parity: nothing reduced is the plain model, bit for bit ------------------------------------------------


def test_keep_rate_one_r_zero_and_eval_patchout_are_the_plain_model_exactly():
    model, features = tiny_ast(), torch.randn(2, 48, 32)
    plain = model(features)
    for settings in ({"method": "prune", "keep_rate": 1.0}, {"method": "prune", "keep_rate": [1.0, 1, 1]}, {"method": "temporal", "r": 0}):
        assert apply_tome(model, **settings) is None and model.token_reduction is None
        assert torch.equal(model(features), plain)
    # the reduction loop itself with nothing to do, and patchout at evaluation (training only)
    for reduction in (
        TokenReduction("prune", [1.0, 1.0, 1.0], 17, 2, (3, 5)),
        TokenReduction("temporal", [0, 0, 0], 17, 2, (3, 5)),
        apply_tome(model, freq_patchout=1, time_patchout=2),
    ):
        assert torch.equal(model(features, reduction=reduction), plain)
    assert model.token_reduction.freq_patchout == 1  # installed, yet inert in eval mode
    torch.testing.assert_close(block_forward(model.v.blocks[0], model.embed(features)), model.v.blocks[0](model.embed(features)))


# ---- attention pruning (EViT) ---------------------------------------------------------------------------


def test_pruning_hand_computed_scores_kept_tokens_and_fused_token():
    # one head, d = 1, one prefix query q = 1: logits = k / 1 -> softmax over keys
    keys = torch.tensor([0.0, 0.0, math.log(4), math.log(1), math.log(3)]).view(1, 5, 1, 1)  # prefix key 0, then patches
    queries = torch.ones(1, 5, 1, 1)
    scores = prefix_attention(queries, keys, num_prefix=1, bias=None)
    # exp(logits) = [1, 1, 4, 1, 3] / 10 -> patches (tokens 1..4): 0.1, 0.4, 0.1, 0.3
    torch.testing.assert_close(scores, torch.tensor([[0.1, 0.4, 0.1, 0.3]]))
    pruning = top_k_pruning(scores, keep=2, num_prefix=1)
    assert pruning.kept.tolist() == [[1, 3]] and pruning.fused.tolist() == [[0, 2]]  # ties: the earlier token first
    x = torch.tensor([[[9.0], [1.0], [2.0], [3.0], [4.0]]])  # prefix 9, patches 1..4
    fused = (0.1 * 1 + 0.1 * 3) / 0.2  # attention-weighted mean of the pruned patches 1 and 3
    assert prune_and_fuse(pruning, x).flatten().tolist() == pytest.approx([9.0, 2.0, 4.0, fused])
    assert prune_and_fuse(pruning, torch.ones(1, 5, 1), "sum").flatten().tolist() == [1.0, 1.0, 1.0, 2.0]
    # proportional attention: a key of size 3 counts as 3 copies
    bias = torch.tensor([0.0, 0.0, 0.0, 0.0, math.log(3)]).view(1, 1, 1, 5)
    torch.testing.assert_close(prefix_attention(queries, keys, 1, bias), torch.tensor([[1.0, 4.0, 1.0, 9.0]]) / 16)
    assert kept_count(10, 0.7) == 7 and kept_count(10, 1.0) == 10 and kept_count(3, 0.5) == 2


def test_pruning_in_the_model_counts_tokens_and_matches_the_flop_counter():
    model, features = tiny_ast(depth=3), torch.randn(1, 48, 32)
    reduction = apply_tome(model, method="prune", keep_rate=[0.5, 0.7, 0.5])
    # 15 patches -> keep 8 + fused = 11 tokens; then 9 patches -> keep 7 + 1 = 10 (the last block: readout)
    assert reduction.tokens_per_layer == [17, 11, 10] == tokens_per_layer(model, features)
    for pooling in ("cls_dist", "cls", "mean"):
        model = tiny_ast(pooling=pooling)
        reduction = apply_tome(model, method="prune", keep_rate=0.6)
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(features)
        assert ast_forward_flops(model, reduction) == counter.get_total_flops(), pooling


def test_pruning_keeps_the_attended_tokens_and_the_fused_token_sums_the_sizes():
    model = tiny_ast(depth=2)
    reduction = apply_tome(model, method="prune", keep_rate=[0.4, 1.0], trace_source=True)
    model.forward_features(torch.randn(2, 48, 32))
    source = reduction.source  # [B, 2 + 6 + 1, 17]
    assert source.shape == (2, 9, 17)
    assert torch.equal(source.sum(dim=1), torch.ones(2, 17))  # every input token in exactly one final token
    assert reduction.size[:, -1, 0].tolist() == [9.0, 9.0]  # the fused token holds the 15 - 6 pruned patches


# ---- temporal merging ------------------------------------------------------------------------------------


def test_temporal_matching_hand_computed_merges_neighbours_only_and_keeps_order():
    # 1 row, 5 columns with 2-d unit directions; A = columns 0, 2, 4, B = columns 1, 3
    angles = [0, 5, 90, 170, 180]
    metric = torch.tensor([[[[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles]]])  # [1, 1, 5, 2]
    # links: col 0 -> 1 (5°), col 2 -> 3 (80°, better than 85° to col 1), col 4 -> 3 (10°)
    assert neighbour_matching(metric, r=1).tolist() == [[0, 0, 1, 2, 3]]  # col 0 into col 1 (most similar)
    assert neighbour_matching(metric, r=2).tolist() == [[0, 0, 1, 2, 2]]  # then col 4 into col 3
    assert neighbour_matching(metric, r=5).tolist() == [[0, 0, 1, 2, 2]]  # capped at 5 // 2 = 2 merges
    grid = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]).view(1, 1, 5, 1)
    size = torch.tensor([1.0, 3.0, 1.0, 1.0, 1.0]).view(1, 1, 5, 1)
    merged, total = merge_columns_wavg(grid, size, neighbour_matching(metric, r=2), 3)
    assert merged.flatten().tolist() == pytest.approx([(1 + 6) / 4, 3.0, 4.5]) and total.flatten().tolist() == [4.0, 1.0, 2.0]


def test_temporal_merging_in_the_model_frames_and_flops():
    model, features = tiny_ast(depth=3), torch.randn(2, 48, 32)
    plain_logits, plain_frames = model.forward_frames(features)
    reduction = apply_tome(model, method="temporal", r=1)
    assert reduction.tokens_per_layer == [17, 14, 11]  # one column of 3 rows merged per layer
    logits, frames = model.forward_frames(features)
    assert frames.shape == plain_frames.shape == (2, 5, 32) and not torch.allclose(frames, plain_frames)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(features[:1])
    assert ast_forward_flops(model, reduction) == counter.get_total_flops()
    # order kept: the same frames as source-tracking unmerge of the same reduction
    traced = apply_tome(model, method="temporal", r=1, trace_source=True)
    _, run = model.run_blocks(features)
    from fast_ast.backbones.ast import time_tokens, unmerge_tokens

    tokens = model.forward_features(features)
    torch.testing.assert_close(time_tokens(unmerge_tokens(tokens, traced.source), model.grid), frames)
    assert (run.columns[:, 1:] >= run.columns[:, :-1]).all()


# ---- structured patchout -----------------------------------------------------------------------------------


def test_structured_patchout_hand_computed_and_training_only():
    tokens = torch.arange(2 + 6, dtype=torch.float32).view(1, 8, 1)  # prefix 0, 1; grid 2 x 3: rows (2,3,4), (5,6,7)
    out = structured_patchout(tokens, (2, 3), 2, torch.tensor([1]), torch.tensor([0, 2]))
    assert out.flatten().tolist() == [0.0, 1.0, 5.0, 7.0]
    model = tiny_ast()
    apply_tome(model, freq_patchout=1, time_patchout=2)
    model.train()
    assert tokens_per_layer(model, torch.randn(2, 48, 32)) == [2 + 2 * 3] * 3
    model.eval()
    assert tokens_per_layer(model, torch.randn(2, 48, 32)) == [17] * 3


# ---- gradients ---------------------------------------------------------------------------------------------


def test_gradients_through_pruning_and_temporal_merging_float64():
    model = tiny_ast(depth=2, embed_dim=8).double().eval()
    features = torch.randn(1, 48, 32, dtype=torch.double)
    tokens = model.embed(features).detach().requires_grad_()
    for settings in ({"method": "prune", "keep_rate": 0.5}, {"method": "temporal", "r": 1}):
        reduction = plan_reduction(model, **settings)

        def forward(x, reduction=reduction):
            from fast_ast.tome.run import ReductionRun

            run = ReductionRun(reduction, x, training=False)
            for layer, block in enumerate(model.v.blocks):
                x = block_forward(block, x, run.bias(x.dtype), None, run.step(layer))
            return x

        assert torch.autograd.gradcheck(forward, (tokens,), eps=1e-6, atol=1e-5, fast_mode=True), settings
    model = tiny_ast(depth=2).train()
    for settings in ({"method": "prune", "keep_rate": 0.5}, {"method": "temporal", "r": 1}, {"freq_patchout": 1, "time_patchout": 1}):
        model.zero_grad()
        apply_tome(model, **settings)
        model(torch.randn(2, 48, 32)).logsumexp(dim=-1).sum().backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, (settings, name)


# ---- configuration errors name the key --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "evit"}, "tome.method"),
        ({"method": "prune", "r": 4, "keep_rate": 0.5}, "tome.r"),
        ({"method": "tome", "r": 2, "keep_rate": 0.5}, "tome.keep_rate"),
        ({"method": "prune", "keep_rate": 0.0}, "tome.keep_rate"),
        ({"method": "prune", "keep_rate": [0.5, 0.5]}, "tome.keep_rate lists"),
        ({"method": "temporal", "r": 6}, "tome.r"),
        ({"freq_patchout": 3}, "tome.freq_patchout"),
        ({"time_patchout": -1}, "tome.time_patchout"),
    ],
)
def test_settings_that_do_not_fit_name_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        plan_reduction(tiny_ast(), **settings)


def test_group_options_compose():
    assert compose_config("train", ["tome=prune"]).tome.method == "prune"
    assert compose_config("train", ["tome=temporal"]).tome.r == 1
    patchout = compose_config("train", ["tome=patchout"]).tome
    assert patchout.r == 0 and patchout.freq_patchout == 3
    assert list(compose_config("bench", ["suite=tome", "tome_suite.r=[0,4]"]).tome_suite.r) == [0, 4]


# ---- end to end: a tiny training run per method --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "tokens"),
    [
        (("tome=prune", "tome.keep_rate=0.5"), [110, 57]),  # 108 patches -> keep 54 + fused
        (("tome=temporal", "tome.r=2"), [110, 86]),  # 2 columns x 12 rows
        (("tome=patchout",), [110, 110]),  # training only
    ],
)
def test_train_with_each_reduction_end_to_end(tmp_path, overrides, tokens):
    results = run_train(tmp_path, *overrides, "model.backbone.depth=2")
    assert results["status"] == "completed" and results["tokens"]["per_layer"] == tokens
    model = load_classifier(results["checkpoints"]["best"])
    assert model.hparams.tome["method"] == OmegaConf.to_container(compose_config("train", list(overrides)).tome)["method"]


# ---- the budgeted search -------------------------------------------------------------------------------------


def test_greedy_search_known_answer():
    # 3 layers, cost = sum of the plain layers' cost minus 1 per level; reducing layer 0 costs score,
    # layer 2 is free, layer 1 cheap: the search must spend layer 2 first, then layer 1, never layer 0
    weights = [1.0, 0.1, 0.0]

    def score(levels):
        return 1.0 - sum(w * level for w, level in zip(weights, levels))

    def cost(levels):
        return 13.0 - sum(levels)

    result = greedy_search(3, 4, score, cost, budget=0.5)  # 13 - 7 levels <= 6.5
    assert result.levels == [0, 3, 4] and result.within_budget and result.cost == pytest.approx(6 / 13)
    assert [t["levels"] for t in result.trajectory[:5]] == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 0, 4]]
    stopped = greedy_search(3, 4, score, cost, budget=0.05)  # every layer at its cap (1 / 13): cannot reach it
    assert not stopped.within_budget and stopped.levels == [4, 4, 4]
    with pytest.raises(ValueError, match="budget"):
        greedy_search(3, 4, score, cost, budget=0)


def test_tune_reduction_finds_a_schedule_within_budget_and_writes_it_back(trained_classifier, tmp_path):
    cfg = compose_config("tune_reduction", [
        f"ckpt_path={trained_classifier.best}", *trained_classifier.data_overrides, "data.train_size=1",
        f"paths.output_dir={tmp_path}", "budget=0.85", "max_clips=40", "step=1",
    ])
    summary = tune(cfg)  # 20 tokens, 2 blocks (the last a 2-row readout): merging reaches ~0.77 of the plain FLOPs
    assert summary["found"]["within_budget"] and summary["found"]["cost"] <= 0.85
    assert summary["baselines"]["tome_constant"]["cost"] <= 0.85 and summary["baselines"]["tome_decreasing"]["cost"] <= 0.85
    found = OmegaConf.to_container(OmegaConf.load(tmp_path / "reduction.yaml"))
    assert found["method"] == "tome" and len(found["r"]) == 2
    model = load_classifier(trained_classifier.best, tome=found)  # passes back as tome.r=[...]
    assert ast_forward_flops(model.backbone, model.backbone.token_reduction) / ast_forward_flops(model.backbone) == pytest.approx(summary["found"]["cost"])
    assert json.loads((tmp_path / "search.json").read_text())["trajectory"][0]["levels"] == [0, 0]


# ---- eval sweeps in the report ----------------------------------------------------------------------------------


def test_report_reads_an_eval_sweep_of_reductions(trained_classifier, tmp_path):
    sweep = tmp_path / "sweep"
    run_module(
        "fast_ast.eval", "-m", f"ckpt_path={trained_classifier.best}", *trained_classifier.data_overrides, "data.train_size=1",
        "split=val", "trainer.enable_progress_bar=false", "throughput.repeats=1", "throughput.batch_sizes=[1,4]",
        "tome={r:0},{r:4},{method:prune,r:0,keep_rate:0.5}", f"hydra.sweep.dir={sweep}",
    )
    paths = report(sweep, remeasure=True, repeats=2)
    table = paths["reduction_markdown"].read_text()
    assert "clips/s b=1" in table and "clips/s b=4" in table and "re-measured side by side" in table
    rows = [line for line in table.splitlines() if line.startswith("| tome=")]
    assert len(rows) == 3 and any("keep_rate:0.5" in row for row in rows)
    assert table.count(" *") >= 2  # at least one point on each batch size's front
    results = json.loads((sweep / "1" / "results.json").read_text())
    assert results["tome"]["r"] == 4 and results["gflops"] < json.loads((sweep / "0" / "results.json").read_text())["gflops"]
    assert paths["reduction_plot"].stat().st_size > 0


def test_peak_memory_counts_the_forward_tensors():
    small = peak_forward_bytes(torch.nn.Linear(8, 1000), torch.randn(1, 8))
    large = peak_forward_bytes(torch.nn.Linear(8, 1000), torch.randn(10, 8))
    assert small == 4000 and large == 40000  # the output: batch x 1000 float32
