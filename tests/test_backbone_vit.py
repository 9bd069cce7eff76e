"""backbone=vit: any timm ViT/DeiT by name on the audio patch grid, its timm weights, pooling and ToMe."""

from __future__ import annotations

import pytest
import timm
import torch

from fast_ast.backbones.registry import build_backbone
from fast_ast.backbones.vit import ViT
from fast_ast.backbones.weights import load_pretrained
from fast_ast.tome import apply_tome
from tests.fixtures.backbones import one_thread


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    with one_thread():
        yield


def tiny(**size) -> ViT:
    """deit_tiny (D 192) with 2 blocks on 100 frames x 128 bins: a 12 x 9 patch grid at stride 10."""
    return ViT(num_classes=5, input_fdim=128, input_tdim=100, **{"timm_name": "deit_tiny_patch16_224", "depth": 2, **size})


def test_contract_and_token_layout():
    torch.manual_seed(0)
    model = tiny().eval()
    x = torch.randn(2, 100, 128)
    assert model.num_prefix_tokens == 1 and model.token_grid == (12, 9) and model.num_tokens == 1 + 108
    assert model.supports_token_merging and not model.frames_are_logits
    assert model.embed(x).shape == (2, 109, 192)
    logits, frames = model.forward_frames(x)
    assert model(x).shape == (2, 5) and frames.shape == (2, model.num_frames, 192) == (2, 9, 192)
    torch.testing.assert_close(model(x), logits, rtol=1e-4, atol=1e-5)  # the cls-row readout of the last block
    tokens = model.forward_features(x)  # frames: patch tokens averaged over the 12 frequency rows
    torch.testing.assert_close(frames, tokens[:, 1:].reshape(2, 12, 9, 192).mean(dim=1))
    assert model.frame_hop == 10.0 and model.frame_offset == 7.5


def test_any_timm_vit_by_name():
    small = build_backbone({"name": "vit", "timm_name": "vit_small_patch16_224", "depth": 1, "pooling": "mean"}, 3, 64, 200)
    assert small.embed_dim == 384 and small.num_heads == 6 and small.grid == (5, 19)
    assert small(torch.randn(1, 200, 64)).shape == (1, 3)
    distilled = tiny(timm_name="deit_tiny_distilled_patch16_224", pooling="cls_dist")
    assert distilled.num_prefix_tokens == 2 and distilled.num_tokens == 2 + 108


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match=r"model.backbone.pooling .*cls_dist needs a distillation token"):
        tiny(pooling="cls_dist")
    with pytest.raises(ValueError, match=r"model.backbone.timm_name='vit_nonexistent' is not a timm model"):
        tiny(timm_name="vit_nonexistent")
    with pytest.raises(ValueError, match=r"model.backbone.timm_name='resnet18' is not a timm ViT/DeiT"):
        tiny(timm_name="resnet18")
    with pytest.raises(ValueError, match=r"register tokens"):
        tiny(timm_name="vit_small_patch14_reg4_dinov2")


def test_timm_state_dict_loads_with_ast_resize_rules(tmp_path):
    reference = timm.create_model("deit_tiny_patch16_224", pretrained=False, depth=2)  # a 14 x 14 ImageNet grid
    state = reference.state_dict()
    torch.save(state, tmp_path / "deit_tiny.pth")
    model = tiny()
    load_pretrained(model, str(tmp_path / "deit_tiny.pth"), fmt="timm")
    ours = model.state_dict()
    torch.testing.assert_close(ours["v.patch_embed.proj.weight"], state["patch_embed.proj.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(ours["v.blocks.1.attn.qkv.weight"], state["blocks.1.attn.qkv.weight"])
    pos = state["pos_embed"]  # [1, 1 + 196, 192]: cls, then 14 x 14 patches
    torch.testing.assert_close(ours["v.pos_embed"][:, :1], pos[:, :1])
    # 14 x 14 -> 12 x 9: both axes smaller, so a centre crop (rows 1..12, columns 3..11)
    grid = pos[0, 1:].reshape(14, 14, 192)
    torch.testing.assert_close(ours["v.pos_embed"][0, 1:].reshape(12, 9, 192), grid[1:13, 3:12])
    assert "v.dist_token" not in ours  # a ViT gets no distillation token (AST would copy one from cls)


def test_token_merging_applies():
    torch.manual_seed(0)
    model = tiny(pooling="mean").eval()
    x = torch.randn(2, 100, 128)
    plain = model(x)
    merging = apply_tome(model, r=8, trace_source=True)
    assert merging is not None and merging.num_prefix == 1 and merging.tokens_per_layer == [109, 101]
    logits, frames = model.forward_frames(x)
    assert logits.shape == (2, 5) and frames.shape == (2, 9, 192)
    assert merging.source.shape == (2, 93, 109)  # 109 - 8 - 8 final tokens, each tracing its input tokens
    assert not torch.allclose(model(x), plain)
    assert apply_tome(model, r=0) is None and torch.equal(model(x), plain)
