"""The AST against the original's arithmetic (Gong et al. 2021; YuanGongND/ast `ASTModel.forward`), in float64.

The reference below is written from the paper's layout with plain tensor ops on the state dict, not
with the project's modules: 1-channel 16x16 patch conv at (fstride, tstride) over the [F, T] image,
cls + distillation tokens, positional embedding, pre-norm blocks (LayerNorm eps 1e-6, softmax
attention, exact-erf GELU MLP), final LayerNorm (1e-6), (cls + dist) / 2, then `mlp_head` =
LayerNorm with PyTorch's default eps 1e-5 + Linear. Two correct float64 computations agree to ~1e-12.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fast_ast.backbones.ast import AST
from fast_ast.backbones.weights import load_pretrained

SIZE = dict(input_fdim=32, input_tdim=48, fstride=8, tstride=8, embed_dim=32, depth=2, num_heads=2)


def original_ast_logits(state: dict[str, torch.Tensor], x: torch.Tensor, heads: int, fstride: int, tstride: int) -> torch.Tensor:
    """x [B, T, F] -> logits [B, C] with the original's operations, from original-layout keys (v.*, mlp_head.*)."""
    image = x.unsqueeze(1).transpose(2, 3)  # [B, 1, F, T]
    patches = F.conv2d(image, state["v.patch_embed.proj.weight"], state["v.patch_embed.proj.bias"], stride=(fstride, tstride))
    tokens = patches.flatten(2).transpose(1, 2)
    batch, width = tokens.shape[0], tokens.shape[-1]
    prefix = torch.cat((state["v.cls_token"].expand(batch, -1, -1), state["v.dist_token"].expand(batch, -1, -1)), dim=1)
    h = torch.cat((prefix, tokens), dim=1) + state["v.pos_embed"]
    depth = len({key.split(".")[2] for key in state if key.startswith("v.blocks.")})
    for i in range(depth):
        p = lambda name: state[f"v.blocks.{i}.{name}"]  # noqa: E731
        y = F.layer_norm(h, (width,), p("norm1.weight"), p("norm1.bias"), eps=1e-6)
        q, k, v = F.linear(y, p("attn.qkv.weight"), p("attn.qkv.bias")).reshape(batch, -1, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
        attention = (q @ k.transpose(-2, -1) * (width // heads) ** -0.5).softmax(dim=-1)
        h = h + F.linear((attention @ v).transpose(1, 2).reshape(batch, -1, width), p("attn.proj.weight"), p("attn.proj.bias"))
        y = F.layer_norm(h, (width,), p("norm2.weight"), p("norm2.bias"), eps=1e-6)
        h = h + F.linear(F.gelu(F.linear(y, p("mlp.fc1.weight"), p("mlp.fc1.bias"))), p("mlp.fc2.weight"), p("mlp.fc2.bias"))
    h = F.layer_norm(h, (width,), state["v.norm.weight"], state["v.norm.bias"], eps=1e-6)
    pooled = (h[:, 0] + h[:, 1]) / 2
    pooled = F.layer_norm(pooled, (width,), state["mlp_head.0.weight"], state["mlp_head.0.bias"], eps=1e-5)
    return F.linear(pooled, state["mlp_head.1.weight"], state["mlp_head.1.bias"])


def original_checkpoint(tmp_path) -> tuple[dict[str, torch.Tensor], str]:
    """Random float64 weights in the original's layout, saved as its DataParallel `.pth` (module. prefix)."""
    torch.manual_seed(0)
    source = AST(num_classes=6, **SIZE).double()
    with torch.no_grad():
        for parameter in source.parameters():  # LayerNorm weights too: nothing left at 1 or 0
            parameter.normal_(0, 0.3)
    state = {key: value.detach().clone() for key, value in source.state_dict().items()}
    path = tmp_path / "audioset_original.pth"
    torch.save({f"module.{key}": value for key, value in state.items()}, path)
    return state, str(path)


def test_loaded_original_weights_give_the_original_logits_in_float64(tmp_path):
    state, path = original_checkpoint(tmp_path)
    model = AST(num_classes=6, **SIZE).double().eval()  # head_norm_eps defaults to the original's 1e-5
    load_pretrained(model, path, fmt="ast")
    x = torch.randn(3, SIZE["input_tdim"], SIZE["input_fdim"], dtype=torch.float64)
    expected = original_ast_logits(state, x, SIZE["num_heads"], SIZE["fstride"], SIZE["tstride"])
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-12)
        # the blocks' epsilon in the head (the earlier layout) is measurably not the original
        wrong = AST(num_classes=6, head_norm_eps=1e-6, **SIZE).double().eval()
        load_pretrained(wrong, path, fmt="ast")
        assert (wrong(x) - expected).abs().max().item() > 1e-9
