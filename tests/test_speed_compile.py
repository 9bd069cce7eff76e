"""model.compile: the compiled backbone computes the eager logits, compiles once per input signature (ToMe with a
fixed schedule included), and stops with a clear error when shapes change call after call."""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

import fast_ast.modules.compile as compile_module
from fast_ast.backbones.ast import AST
from fast_ast.modules.checkpoint import load_classifier
from fast_ast.modules.compile import CompileError, compile_backbone, is_compiled
from fast_ast.tome import apply_tome
from tests.helpers import run_train


def tiny_ast() -> AST:
    torch.manual_seed(0)
    return AST(5, input_fdim=32, input_tdim=48, embed_dim=32, depth=2, num_heads=2)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from scratch and leaves dynamo's global limits as it found them."""
    saved = torch._dynamo.config.recompile_limit, torch._dynamo.config.fail_on_recompile_limit_hit
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    torch._dynamo.config.recompile_limit, torch._dynamo.config.fail_on_recompile_limit_hit = saved


def test_inductor_compiled_logits_equal_eager_with_tome():
    eager = tiny_ast().eval()
    apply_tome(eager, r=4)
    compiled = compile_backbone(copy.deepcopy(eager), "inductor")
    x = torch.randn(2, 48, 32)
    with torch.no_grad():
        expected, actual = eager(x), compiled(x)
    assert is_compiled(compiled) and not is_compiled(eager)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # in place: no _orig_mod. prefix
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


def graphs() -> int:
    return counters["stats"]["unique_graphs"]


def test_fixed_tome_schedule_compiles_once_for_training():
    backbone = tiny_ast().train()
    apply_tome(backbone, r=4)
    compile_backbone(backbone, "aot_eager")
    optimizer = torch.optim.SGD(backbone.parameters(), lr=0.01)

    def step():
        optimizer.zero_grad()
        backbone(torch.randn(2, 48, 32)).square().mean().backward()
        optimizer.step()

    step()
    after_first = graphs()
    for _ in range(3):
        step()
    assert graphs() == after_first  # new data, same shapes: no recompilation
    apply_tome(backbone, r=2)  # another schedule is another signature: one recompile (the guard works)
    step()
    assert graphs() == after_first + 1


def test_shapes_that_change_every_call_stop_the_run(monkeypatch):
    monkeypatch.setattr(compile_module, "RECOMPILE_LIMIT", 2)
    backbone = compile_backbone(tiny_ast().eval(), "aot_eager")
    with torch.no_grad():
        backbone(torch.randn(1, 48, 32))
        backbone(torch.randn(2, 48, 32))
        with pytest.raises(CompileError, match="model.compile=true: the backbone was recompiled for 2 different input signatures"):
            backbone(torch.randn(3, 48, 32))


def test_unknown_backend_names_the_key():
    with pytest.raises(ValueError, match="model.compile_backend='inductr'"):
        compile_backbone(tiny_ast(), "inductr")


def test_model_compile_trains_and_checkpoints_the_plain_keys(tmp_path):
    results = run_train(tmp_path, "model.compile=true", "model.compile_backend=aot_eager", "model=ast_tome", "tome.r=8",
                        "model.backbone.depth=2")
    assert results["status"] == "completed"
    checkpoint = torch.load(results["checkpoints"]["last"], map_location="cpu", weights_only=True)
    assert not any("_orig_mod" in key for key in checkpoint["state_dict"])
    model = load_classifier(results["checkpoints"]["last"])  # rebuilt compiled, as trained
    assert is_compiled(model.backbone)
