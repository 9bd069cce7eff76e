"""`model.compile=true`: torch.compile the backbone in place, for training and evaluation, with or without ToMe.

`nn.Module.compile` wraps the module's call and keeps its parameters and state_dict keys as they are, so
checkpoints, weight averaging and pretrained loading see the plain AST. Shapes are static (`dynamic=False`):
a fixed ToMe schedule gives the same token counts every step, so the graph is compiled once per input
signature (batch size, train/eval mode, grad mode, autocast dtype, ToMe schedule), not once per step. A
training run sees a handful of them (training batch, last partial batch, validation, the throughput
figure); more than RECOMPILE_LIMIT means shapes change every step, and the run stops with CompileError
instead of silently recompiling or falling back to eager.
"""

from __future__ import annotations

import torch
import torch._dynamo
from torch import nn

# Distinct input signatures one compiled backbone may see before the run stops (see the module docstring).
RECOMPILE_LIMIT = 8


class CompileError(RuntimeError):
    pass


def compile_backbone(backbone: nn.Module, backend: str = "inductor") -> nn.Module:
    """Compiles `backbone` in place (its forward, with whatever ToMe hook it has at call time); returns it.

    backend: a torch.compile backend, `inductor` (generated C++/Triton kernels) or `aot_eager` (same graph
    capture and autograd, eager kernels: a check of the compiled path without the C++ compile time).
    """
    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise ValueError(f"model.compile_backend={backend!r} is not a torch.compile backend; e.g. inductor or aot_eager")
    torch._dynamo.config.recompile_limit = RECOMPILE_LIMIT
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    backbone.compile(backend=backend, dynamic=False)
    compiled_call = backbone._compiled_call_impl

    def call(*args, **kwargs):
        try:
            return compiled_call(*args, **kwargs)
        except torch._dynamo.exc.FailOnRecompileLimitHit as error:
            shapes = [tuple(arg.shape) for arg in args if isinstance(arg, torch.Tensor)]
            raise CompileError(
                f"model.compile=true: the backbone was recompiled for {RECOMPILE_LIMIT} different input signatures "
                f"(last input shapes {shapes}, ToMe {getattr(backbone, 'token_reduction', None)}); its shapes change from "
                "call to call. Keep the batch size, clip length and ToMe schedule fixed (tome.r as a constant or a "
                "per-layer list), or train with model.compile=false. TORCH_LOGS=recompiles shows what changed."
            ) from error

    backbone._compiled_call_impl = call
    return backbone


def is_compiled(backbone: nn.Module) -> bool:
    return getattr(backbone, "_compiled_call_impl", None) is not None
