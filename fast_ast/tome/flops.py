"""Forward FLOPs of an AST from the tokens in each layer (1 multiply-add = 2 FLOPs; matmuls only,
the same convention as torch.utils.flop_counter: norms, softmax, GELU, gathers and element-wise
similarities are not counted).

With P prefix tokens, D = embed_dim, H = MLP hidden width, d = head_dim, n tokens entering a block
and m entering its MLP (after the block's reduction):
    patch embedding  2 * patches * patch_size^2 * D
    per block        2*n*D*3D (qkv) + 2*n*n*D (q k^T) + 2*n*n*D (attn v) + 2*n*D*D (proj) + 2*m*D*H * 2 (MLP)
                     + ToMe:    2*A*B*d, A = ceil((n - P) / 2), B = floor((n - P) / 2) (matching similarities)
                     + pruning: 2*P*n*D (the prefix queries' attention logits, for the scores)
    last block       as `AST.forward` runs it: queries, projection and MLP for the q rows the head reads
                     (q = 2 for cls_dist, 1 for cls), keys and values for all n, no reduction (mean
                     pooling reads every token: there the last block is counted like the others):
                     2*q*D*D + 2*n*D*2D + 4*q*n*D + 2*q*D*D + 4*q*D*H
    head             2 * D * classes
"""

from __future__ import annotations

from fast_ast.tome.apply import TokenReduction
from fast_ast.tome.prune import kept_count


def ast_forward_flops(backbone, reduction: TokenReduction | None = None) -> int:
    """FLOPs of one clip through `backbone.forward` (an AST) at evaluation under `reduction` (None: plain)."""
    from fast_ast.backbones.ast import POOLINGS

    dim = backbone.embed_dim
    hidden = backbone.v.blocks[0].mlp.fc1.out_features
    head_dim = backbone.v.blocks[0].attn.head_dim
    p = backbone.num_prefix_tokens
    if reduction is None:
        layers, method, schedule = [(backbone.num_tokens, backbone.num_tokens)] * backbone.depth, None, [0] * backbone.depth
    else:
        layers, method, schedule = reduction.layer_tokens, reduction.method, reduction.schedule
    flops = 2 * backbone.num_patches * backbone.patch_size**2 * dim
    readout = POOLINGS[backbone.pooling]
    per_layer = list(zip(layers, schedule, strict=True))
    for (n, m), amount in per_layer if readout is None else per_layer[:-1]:
        flops += 2 * n * dim * 3 * dim + 4 * n * n * dim + 2 * n * dim * dim + 4 * m * dim * hidden
        if method == "tome" and amount > 0:
            mergeable = n - p
            flops += 2 * ((mergeable + 1) // 2) * (mergeable // 2) * head_dim
        elif method == "prune" and kept_count(n - p, amount) < n - p:
            flops += 2 * p * n * dim
    if readout is None:  # mean pooling reads every token: the last block is a block like the others
        return flops + 2 * dim * backbone.num_classes
    n, q = layers[-1][0], readout
    flops += 2 * q * dim * dim + 2 * n * dim * 2 * dim + 4 * q * n * dim + 2 * q * dim * dim + 4 * q * dim * hidden
    return flops + 2 * dim * backbone.num_classes
