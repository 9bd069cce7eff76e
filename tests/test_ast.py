"""The AST backbone: patch grid, token count, pooling, fine-tuning strategies."""

from __future__ import annotations

import pytest
import torch

from fast_ast.backbones.ast import AST, patch_grid
from fast_ast.modules.finetune import apply_finetune


def tiny(**kwargs) -> AST:
    args = dict(num_classes=5, input_fdim=128, input_tdim=100, embed_dim=32, depth=3, num_heads=2)
    return AST(**{**args, **kwargs})


def test_base384_on_10s_has_the_papers_1214_tokens():
    # AST paper: 128 bins x 1024 frames, 16x16 patches, stride 10 -> 12 x 101 patches (+ cls + dist)
    assert patch_grid(128, 1024, 16, 10, 10) == (12, 101)
    model = AST(num_classes=527, input_fdim=128, input_tdim=1024, fstride=10, tstride=10, depth=1)
    assert model.num_tokens == 1214
    assert model.v.pos_embed.shape == (1, 1214, 768)
    assert model.v.patch_embed.proj.stride == (10, 10)


def test_forward_shapes_and_pooling_is_mean_of_cls_and_dist():
    model = tiny().double().eval()  # readout vs full last block: two orders, compared in float64
    x = torch.randn(2, 100, 128, dtype=torch.float64)
    tokens = model.forward_features(x)
    assert tokens.shape == (2, 2 + 12 * 9, 32)
    expected = model.mlp_head((tokens[:, 0] + tokens[:, 1]) / 2)
    torch.testing.assert_close(model(x), expected)


def test_patch_order_is_frequency_major_over_a_time_frequency_input():
    # A single hot patch at (freq row 1, time col 2) with non-overlapping patches lands at token 2 + 1 * t_dim + 2.
    model = tiny(fstride=16, tstride=16).eval()
    with torch.no_grad():
        model.v.patch_embed.proj.weight.fill_(1.0)
        model.v.patch_embed.proj.bias.zero_()
        x = torch.zeros(1, 100, 128)  # [B, T, F]
        x[0, 32:48, 16:32] = 1.0
        x = x.unsqueeze(1).transpose(2, 3)
        patches = model.v.patch_embed.proj(x).flatten(2).transpose(1, 2)[0, :, 0]
    t_dim = model.grid[1]
    assert patches.nonzero().flatten().tolist() == [1 * t_dim + 2]


def test_input_smaller_than_a_patch_is_rejected():
    with pytest.raises(ValueError, match="smaller than one 16x16 patch"):
        tiny(input_tdim=8)


@pytest.mark.parametrize("strategy,last_n,trainable", [
    ("full", 1, {"v.blocks.0", "v.blocks.1", "v.blocks.2", "v.norm", "mlp_head", "v.patch_embed", "v.pos_embed"}),
    ("head", 1, {"mlp_head"}),
    ("last_n", 2, {"v.blocks.1", "v.blocks.2", "v.norm", "mlp_head"}),
])
def test_finetune_strategies(strategy, last_n, trainable):
    model = tiny()
    apply_finetune(model, strategy, last_n)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    prefixes = {".".join(n.split(".")[:3]) if n.startswith("v.blocks") else n.rsplit(".", 1)[0] if "." in n else n for n in names}
    prefixes = {p if not p.startswith("mlp_head") else "mlp_head" for p in prefixes}
    for part in trainable:
        assert any(n.startswith(part) for n in names), part
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    for name in frozen:
        assert not any(name.startswith(part) for part in trainable), name


def test_finetune_last_n_out_of_range():
    with pytest.raises(ValueError, match="model.finetune.last_n"):
        apply_finetune(tiny(), "last_n", 4)
