"""Token Merging: matching and merging against hand-computed cases, schedules, proportional attention,
r = 0 equality with the plain AST, gradients, source tracing, FLOP formula, and a training run."""

from __future__ import annotations

import math

import matplotlib.image
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from fast_ast import visualize
from fast_ast.backbones.ast import AST, NUM_PREFIX_TOKENS
from fast_ast.backbones.attention import self_attention
from fast_ast.modules.checkpoint import load_classifier
from fast_ast.backbones.attention import block_forward
from fast_ast.tome import TokenReduction, apply_tome
from fast_ast.tome.run import size_bias
from fast_ast.tome.flops import ast_forward_flops
from fast_ast.tome.merge import Matching, bipartite_soft_matching, max_merges, merge_source, merge_wavg
from fast_ast.tome.schedule import capped_schedule, requested_schedule, tokens_per_layer
from fast_ast.visualize import patch_groups
from tests.helpers import compose_config, run_train


def tome_block(block, x: torch.Tensor, r: int, size: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One block with r ToMe merges after attention (proportional attention on `size`): (x, size)."""
    sizes = [size]

    def merge(out, queries, keys):
        out, sizes[0] = merge_wavg(bipartite_soft_matching(keys.mean(dim=2), r, 2), out, size)
        return out

    out = block_forward(block, x, None if size is None else size_bias(size, x.dtype), reduce=merge if r else None)
    return out, sizes[0]


def tiny_ast(depth: int = 2, **kwargs) -> AST:
    """32 frames x 32 bins, patch 16, stride 8 -> 3 x 3 patches + 2 prefix tokens = 11 tokens."""
    torch.manual_seed(0)
    options = dict(num_classes=4, input_fdim=32, input_tdim=32, fstride=8, tstride=8, embed_dim=32, depth=depth, num_heads=2)
    options.update(kwargs)
    return AST(**options).eval()


def unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


# Two prefix tokens, then A = tokens 2, 4, 6 and B = tokens 3, 5, 7 (alternating).
# Directions: A0 0°, A1 25°, A2 180°; B0 10°, B1 100°, B2 240°. Best links: A0 -> B0 (cos 10° = 0.985),
# A1 -> B0 (cos 15° = 0.966), A2 -> B2 (cos 60° = 0.5). The prefix tokens point like B0 and A0
# (similarity 1): if they took part they would be merged first.
ANGLES = [10, 0, 0, 10, 25, 100, 180, 240]
METRIC = torch.tensor([[unit(a) for a in ANGLES]])  # [1, 8, 2]
FEATURES = torch.tensor([[[float(i), float(10 * i)] for i in range(8)]])  # token i = (i, 10 i)
SIZES = torch.tensor([[[1.0], [1.0], [2.0], [3.0], [1.0], [1.0], [4.0], [2.0]]])


def test_matching_hand_computed_pairs():
    matching = bipartite_soft_matching(METRIC, r=2, num_protected=2)
    assert matching.merged_a.tolist() == [[0, 1]]  # A0 (0.985) then A1 (0.966)
    assert matching.into_b.tolist() == [[0, 0]]  # both into B0
    assert matching.kept_a.tolist() == [[2]]
    three = bipartite_soft_matching(METRIC, r=3, num_protected=2)
    assert three.merged_a.tolist() == [[0, 1, 2]] and three.into_b.tolist() == [[0, 0, 2]]


def test_merge_wavg_hand_computed_means_and_sizes():
    x, size = merge_wavg(bipartite_soft_matching(METRIC, r=2, num_protected=2), FEATURES, SIZES)
    # Layout: prefix 0, 1; kept A2 (token 6); B0 (tokens 3 + 2 + 4); B1 (token 5); B2 (token 7).
    b0 = (2 * 2 + 3 * 3 + 1 * 4) / (2 + 3 + 1)  # sizes 2, 3, 1 -> 17 / 6
    expected = torch.tensor([[[0, 0], [1, 10], [6, 60], [b0, 10 * b0], [5, 50], [7, 70]]], dtype=torch.float)
    torch.testing.assert_close(x, expected)
    assert size.squeeze(-1).tolist() == [[1, 1, 4, 6, 1, 2]]
    # Without sizes every token counts once: B0 = mean of tokens 2, 3, 4 = 3.
    x, size = merge_wavg(bipartite_soft_matching(METRIC, r=2, num_protected=2), FEATURES)
    torch.testing.assert_close(x[0, 3], torch.tensor([3.0, 30.0]))
    assert size.squeeze(-1).tolist() == [[1, 1, 1, 3, 1, 1]]


def test_merge_source_hand_computed():
    source = merge_source(bipartite_soft_matching(METRIC, r=3, num_protected=2), torch.eye(8).unsqueeze(0))
    held = [torch.nonzero(row).flatten().tolist() for row in source[0]]
    assert held == [[0], [1], [2, 3, 4], [5], [6, 7]]


def test_protected_tokens_never_merge_and_stay_first():
    torch.manual_seed(1)
    x = torch.randn(3, 21, 8)
    metric = x.clone()
    metric[:, 0], metric[:, 1] = metric[:, 2], metric[:, 3]  # prefix identical to patch tokens
    for r in range(0, 12):
        merged, size = merge_wavg(bipartite_soft_matching(metric, r, NUM_PREFIX_TOKENS), x)
        assert merged.shape[1] == 21 - min(r, 9)
        assert torch.equal(merged[:, :2], x[:, :2]) and torch.equal(size[:, :2], torch.ones(3, 2, 1))
    # in the model: the final cls / distillation rows hold exactly input token 0 / 1
    model = tiny_ast(depth=3)
    merging = apply_tome(model, r=4, trace_source=True)
    model(torch.randn(2, 32, 32))
    assert torch.equal(merging.source[:, 0], F.one_hot(torch.tensor([0, 0]), 11).float())
    assert torch.equal(merging.source[:, 1], F.one_hot(torch.tensor([1, 1]), 11).float())


def test_r_is_capped_at_half_the_mergeable_tokens():
    assert max_merges(11, 2) == 4 and max_merges(12, 2) == 5 and max_merges(2, 2) == 0
    metric = torch.randn(2, 11, 4)  # 9 mergeable: |A| = 5, |B| = 4
    matching = bipartite_soft_matching(metric, r=100, num_protected=2)
    assert matching.r == 4 and matching.kept_a.shape == (2, 1)
    # 11 tokens, r = 3 per layer: 11 -> 8 -> 5 (3 mergeable: cap 1) -> 4 (cap 1) -> 3 (cap 0)
    assert capped_schedule([3, 3, 3, 3, 3], 11, 2) == [3, 3, 1, 1, 0]
    assert tokens_per_layer(11, [3, 3, 1, 1, 0]) == [11, 8, 5, 4, 3]
    merging = apply_tome(tiny_ast(depth=3), r=5)  # more than a layer holds: capped, not an error
    assert merging.schedule == [4, 2, 1] and merging.tokens_per_layer == [11, 7, 5]


def test_r_beyond_the_token_count_is_a_config_error():
    with pytest.raises(ValueError, match="tome.r"):
        apply_tome(tiny_ast(), r=10)  # 9 patch tokens
    with pytest.raises(ValueError, match=r"tome.r\[1\]"):
        apply_tome(tiny_ast(), r=[1, -1])
    with pytest.raises(ValueError, match="tome.prop_attn"):
        apply_tome(tiny_ast(), r=1, prop_attn="yes")


def test_schedule_parsing():
    assert requested_schedule(8, None, 4) == [8, 8, 8, 8]
    assert requested_schedule(8, 0.0, 3) == [8, 8, 8]
    assert requested_schedule([1, 0, 5], 0, 3) == [1, 0, 5]
    # ToMe's linear schedule: r (1 - inflection) in the first layer to r (1 + inflection) in the last
    assert requested_schedule(8, -1.0, 5) == [16, 12, 8, 4, 0]
    assert requested_schedule(8, 0.5, 3) == [4, 8, 12]
    assert requested_schedule(8, 1.0, 1) == [8]
    for r, inflection, message in [
        (-1, 0, "tome.r"),
        (True, 0, "tome.r"),
        (2.5, 0, "tome.r"),
        ("8", 0, "tome.r"),
        ([1, 2], 0, "tome.r lists"),
        ([1, 2, 3], 0.5, "tome.inflection"),
        (8, 1.5, "tome.inflection"),
        (8, "down", "tome.inflection"),
    ]:
        with pytest.raises(ValueError, match=message):
            requested_schedule(r, inflection, 3)


def test_r_zero_is_exactly_the_plain_ast():
    model, features = tiny_ast(), torch.randn(2, 32, 32)
    plain = model(features)
    for r in (0, [0, 0]):
        assert apply_tome(model, r=r, inflection=0.0) is None and model.token_reduction is None
        assert torch.equal(model(features), plain)
    # switching merging on and back off (evaluating a plain-trained model with any r) restores it exactly
    assert apply_tome(model, r=2) is not None
    assert not torch.allclose(model(features), plain)
    apply_tome(model, r=0)
    assert torch.equal(model(features), plain)


def test_tome_block_with_r_zero_matches_the_timm_block():
    model, x = tiny_ast().double(), torch.randn(2, 11, 32, dtype=torch.float64)  # two orders: float64
    block = model.v.blocks[0]
    out, size = tome_block(block, x, r=0)
    torch.testing.assert_close(out, block(x))
    assert size is None


def sized_attention_reference(attn, x: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + log size) v, written out, with the module's own weights."""
    batch, tokens, dim = x.shape
    q, k, v = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-2, -1) / math.sqrt(attn.head_dim) + size.log().view(batch, 1, 1, tokens)
    out = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, tokens, dim)
    return attn.proj(out)


def test_proportional_attention_matches_explicit_softmax_and_duplicated_keys():
    attn = tiny_ast().double().v.blocks[0].attn  # fused SDPA vs the written-out softmax: float64
    torch.manual_seed(2)
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    size = torch.tensor([1.0, 1, 3, 1, 2, 1], dtype=torch.float64).expand(2, 6).unsqueeze(-1)
    out, _, keys = self_attention(attn, x, size_bias(size, x.dtype))
    torch.testing.assert_close(out, sized_attention_reference(attn, x, size))
    assert keys.shape == (2, 6, 2, 16)  # [B, N, heads, head_dim]
    # a token of size s attends like s identical copies of it (prop. attention's purpose)
    copies = torch.tensor([0, 1, 2, 2, 2, 3, 4, 4, 5])
    duplicated, _, _ = self_attention(attn, x[:, copies])
    torch.testing.assert_close(out, duplicated[:, [0, 1, 2, 5, 6, 8]])
    # all sizes 1: proportional attention changes nothing
    plain, _, _ = self_attention(attn, x)
    torch.testing.assert_close(self_attention(attn, x, size_bias(torch.ones(2, 6, 1, dtype=x.dtype), x.dtype))[0], plain)
    assert not torch.allclose(out, plain)


def test_prop_attn_switch_changes_merged_models_only():
    model, features = tiny_ast(depth=3).double(), torch.randn(2, 32, 32, dtype=torch.float64)
    apply_tome(model, r=3, prop_attn=True)
    with_prop = model(features)
    apply_tome(model, r=3, prop_attn=False)
    without_prop = model(features)
    # first block sees no sizes yet; later blocks see merged tokens of size > 1
    assert not torch.allclose(with_prop, without_prop)
    apply_tome(model, r=[2, 0, 0], prop_attn=True)
    one_merge = model(features)
    apply_tome(model, r=[2, 0, 0], prop_attn=False)
    assert not torch.allclose(one_merge, model(features))
    apply_tome(model, r=[0, 0, 2], prop_attn=True)
    last_merge = model(features)
    apply_tome(model, r=[0, 0, 2], prop_attn=False)
    torch.testing.assert_close(last_merge, model(features))  # merging after the last attention: no sizes used


def test_gradients_flow_through_merging():
    block = tiny_ast(depth=1, embed_dim=8).v.blocks[0].double()
    torch.manual_seed(3)
    x = torch.randn(1, 11, 8, dtype=torch.double, requires_grad=True)

    def merged(inputs: torch.Tensor) -> torch.Tensor:
        out, size = tome_block(block, inputs, r=3)
        out, _ = tome_block(block, out, r=2, size=size)
        return out

    assert torch.autograd.gradcheck(merged, (x,), eps=1e-6, atol=1e-5, fast_mode=True)
    size = torch.rand(1, 11, 1, dtype=torch.double) + 0.5
    matching = bipartite_soft_matching(torch.randn(1, 11, 4), r=3, num_protected=2)
    assert torch.autograd.gradcheck(lambda a, s: merge_wavg(matching, a, s), (x, size.requires_grad_()), fast_mode=True)
    model = tiny_ast(depth=2).train()
    apply_tome(model, r=3)
    model(torch.randn(2, 32, 32)).logsumexp(dim=-1).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_trace_source_covers_every_input_token_once():
    model = tiny_ast(depth=3)
    merging = apply_tome(model, r=2, trace_source=True)
    model.forward_features(torch.randn(3, 32, 32))  # every final token (forward keeps cls + dist only)
    source = merging.source
    assert source.shape == (3, 11 - 6, 11)
    assert source.sum(dim=(1, 2)).tolist() == [11.0, 11.0, 11.0]
    assert torch.equal(source.sum(dim=1), torch.ones(3, 11))  # each input token in exactly one group
    assert torch.equal(source.sum(dim=-1, keepdim=True), merging.size)


def test_flop_formula_matches_torch_flop_counter():
    model = tiny_ast(depth=3)
    features = torch.randn(1, 32, 32)
    for r in (0, 1, 3):
        merging = apply_tome(model, r=r)
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(features)
        assert ast_forward_flops(model, merging) == counter.get_total_flops()


def test_token_merging_rejects_a_mismatched_backbone():
    merging = TokenReduction("tome", [1, 1, 1], num_tokens=11, num_prefix=2, grid=(3, 3))
    model = tiny_ast(depth=2)
    with pytest.raises(ValueError, match="3 layers"):
        model(torch.randn(1, 32, 32), reduction=merging)
    with pytest.raises(ValueError, match="3 blocks"):
        from fast_ast.tome import install_reduction

        install_reduction(model, merging)


def test_hand_matching_dataclass_drives_merge():
    # a Matching written by hand (not produced by the matcher): A1 -> B0, kept A0
    matching = Matching(1, kept_a=torch.tensor([[0]]), merged_a=torch.tensor([[1]]), into_b=torch.tensor([[0]]))
    x = torch.tensor([[[5.0], [1.0], [2.0], [3.0], [4.0]]])  # prefix 5; A = 1, 3; B = 2, 4
    merged, size = merge_wavg(matching, x)
    assert merged.flatten().tolist() == [5.0, 1.0, 2.5, 4.0] and size.flatten().tolist() == [1, 1, 2, 1]


# ---- configuration and training (conf/model/ast_tome.yaml, conf/tome/*.yaml) ------------------------


def test_ast_tome_preset_is_ast_with_the_tome_group_on():
    plain = compose_config("train", ["model=ast"])
    preset = compose_config("train", ["model=ast_tome", "tome.r=32", "tome.inflection=-0.5"])
    assert preset.model == plain.model
    assert dict(preset.tome) == {
        "method": "tome", "r": 32, "inflection": -0.5, "keep_rate": 1.0, "freq_patchout": 0, "time_patchout": 0,
        "prop_attn": True, "trace_source": False,
    }
    assert plain.tome.r == 0 and compose_config("train", ["model=ast_tome"]).tome.r == 16
    assert compose_config("train", ["model=ast_tome", "tome=none"]).tome.r == 0
    assert list(compose_config("train", ["tome=default", "tome.r=[1,2,3,4]"]).tome.r) == [1, 2, 3, 4]


def test_train_with_token_merging_end_to_end(tmp_path):
    # mini corpus: 128 bins x 100 frames -> 12 x 9 patches + 2 = 110 tokens; r = 8 in each of 2 blocks
    results = run_train(tmp_path, "model=ast_tome", "tome.r=8", "model.backbone.depth=2")
    assert results["status"] == "completed"
    assert results["tokens"]["per_layer"] == [110, 102]
    assert results["tome"]["r"] == 8
    model = load_classifier(results["checkpoints"]["best"])
    assert model.backbone.token_reduction.schedule == [8, 8]
    audio = torch.randn(2, model.hparams.clip_samples) * 0.1
    merged = model(audio)
    plain = load_classifier(results["checkpoints"]["best"], tome={"r": 0})  # the same weights, no merging
    assert plain.backbone.token_reduction is None and not torch.allclose(plain(audio), merged)
    plain.configure_tome({"r": 8})
    torch.testing.assert_close(plain(audio), merged)


def test_r_beyond_the_token_count_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="tome.r asks for 500 merges"):
        run_train(tmp_path, "model=ast_tome", "tome.r=500")  # 108 patch tokens
    assert not (tmp_path / "checkpoints").exists()


def test_patch_groups_and_visualize_png(tmp_path):
    # 2 prefix rows, then 3 tokens over a 2 x 2 patch grid: patches 0 and 3 merged, 1 and 2 alone
    source = torch.zeros(5, 6)
    source[0, 0] = source[1, 1] = 1
    source[2, [2, 5]] = 1
    source[3, 3] = source[4, 4] = 1
    assert patch_groups(source, (2, 2)).tolist() == [[0, -1], [-1, 0]]
    out = tmp_path / "groups.png"
    visualize.main(["--synthetic", "up_chirp", "--r", "8", "--out", str(out), "model.backbone.depth=2"])
    image = matplotlib.image.imread(out)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
    with pytest.raises(ValueError, match="up_chirp"):
        visualize.main(["--synthetic", "nope", "--out", str(out)])
