"""Self-attention on the fused path and the readout block (last block computed for the prefix rows only),
against timm's own Attention/Block and the full computation sliced afterwards. Two computation orders
are compared in float64, where correct ones agree to ~1e-12 whatever kernels the CPU picks."""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block

from fast_ast.backbones.ast import AST
from fast_ast.backbones.attention import block_forward, self_attention
from fast_ast.tome import apply_tome
from fast_ast.tome.run import size_bias


def random_block(dim: int = 32, heads: int = 4) -> Block:
    torch.manual_seed(0)
    block = Block(dim, heads, qkv_bias=True).double().eval()
    with torch.no_grad():
        for parameter in block.parameters():  # LayerNorm weights/biases too: nothing left at 1 or 0
            parameter.normal_(0, 0.3)
    return block


def test_self_attention_equals_timm_attention():
    block = random_block()
    x = torch.randn(3, 9, 32, dtype=torch.float64)
    out, queries, keys = self_attention(block.attn, x)
    torch.testing.assert_close(out, block.attn(x))
    torch.testing.assert_close(queries, block.attn.qkv(x)[..., :32].reshape(3, 9, 4, 8))
    torch.testing.assert_close(keys, block.attn.qkv(x)[..., 32:64].reshape(3, 9, 4, 8))
    torch.testing.assert_close(block_forward(block, x), block(x))  # the one block function, plain


def test_readout_block_equals_the_full_block_sliced():
    block = random_block()
    x = torch.randn(3, 9, 32, dtype=torch.float64)
    for rows in (1, 2, 5):
        torch.testing.assert_close(block_forward(block, x, num_queries=rows), block(x)[:, :rows])
    # with an additive key bias (ToMe's proportional attention) too
    size = torch.randint(1, 4, (3, 9, 1)).double()
    bias = size_bias(size, x.dtype)
    full, _, _ = self_attention(block.attn, x, bias)
    torch.testing.assert_close(self_attention(block.attn, x, bias, num_queries=2)[0], full[:, :2])


def test_readout_block_gives_the_same_gradients():
    block = random_block()
    x = torch.randn(2, 9, 32, dtype=torch.float64, requires_grad=True)
    block_forward(block, x, num_queries=2).square().sum().backward()
    readout = {name: p.grad.clone() for name, p in block.named_parameters()} | {"x": x.grad.clone()}
    block.zero_grad()
    x.grad = None
    block(x)[:, :2].square().sum().backward()
    full = {name: p.grad for name, p in block.named_parameters()} | {"x": x.grad}
    assert readout.keys() == full.keys()
    for name in full:
        torch.testing.assert_close(readout[name], full[name], msg=name)


def test_ast_forward_reads_the_same_logits_as_the_full_last_block():
    torch.manual_seed(1)
    model = AST(num_classes=5, input_fdim=32, input_tdim=48, fstride=8, tstride=8, embed_dim=32, depth=3, num_heads=2).double().eval()
    x = torch.randn(2, 48, 32, dtype=torch.float64)
    for r in (0, 2, [1, 2, 3]):  # plain, then ToMe (merges in the last block only touch unread rows)
        apply_tome(model, r=r)
        full = model.forward_features(x)
        prefix = model.forward_features(x, prefix_only=True)
        assert prefix.shape == (2, 2, 32) and full.shape[1] > 2
        torch.testing.assert_close(prefix, full[:, :2])
        torch.testing.assert_close(model(x), model.head(full))
