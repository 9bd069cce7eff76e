"""Forward FLOPs of an AST from the tokens in each layer (1 multiply-add = 2 FLOPs; matmuls only,
the same convention as torch.utils.flop_counter: norms, softmax, GELU and gathers are not counted).

With P protected tokens, D = embed_dim, H = MLP hidden width, d = head_dim, n = tokens entering a
block and r the pairs it merges (A = ceil((n - P) / 2), B = floor((n - P) / 2) matching sets):
    patch embedding  2 * patches * patch_size^2 * D
    per block        2*n*D*3D (qkv) + 2*n*n*D (q k^T) + 2*n*n*D (attn v) + 2*n*D*D (proj)
                     + [r > 0] 2*A*B*d (matching similarities) + 2*(n - r)*D*H * 2 (MLP)
    last block       as `AST.forward` runs it: queries, projection and MLP for the P prefix tokens only,
                     keys and values for all n, no merging: 2*P*D*D + 2*n*D*2D + 4*P*n*D + 2*P*D*D + 4*P*D*H
    head             2 * D * classes
"""

from __future__ import annotations

from collections.abc import Sequence

from fast_ast.backbones.ast import NUM_PREFIX_TOKENS
from fast_ast.tome.schedule import tokens_per_layer


def ast_forward_flops(backbone, schedule: Sequence[int] | None = None) -> int:
    """FLOPs of one clip through `backbone` (an AST) merging schedule[i] pairs in block i (capped; None = no merging)."""
    schedule = list(schedule) if schedule is not None else [0] * backbone.depth
    dim = backbone.embed_dim
    hidden = backbone.v.blocks[0].mlp.fc1.out_features
    head_dim = backbone.v.blocks[0].attn.head_dim
    flops = 2 * backbone.num_patches * backbone.patch_size**2 * dim
    layers = list(zip(tokens_per_layer(backbone.num_tokens, schedule), schedule, strict=True))
    for n, r in layers[:-1]:
        flops += 2 * n * dim * 3 * dim + 4 * n * n * dim + 2 * n * dim * dim
        if r > 0:
            mergeable = n - NUM_PREFIX_TOKENS
            flops += 2 * ((mergeable + 1) // 2) * (mergeable // 2) * head_dim
        flops += 4 * (n - r) * dim * hidden
    n, p = layers[-1][0], NUM_PREFIX_TOKENS
    flops += 2 * p * dim * dim + 2 * n * dim * 2 * dim + 4 * p * n * dim + 2 * p * dim * dim + 4 * p * dim * hidden
    return flops + 2 * dim * backbone.num_classes
