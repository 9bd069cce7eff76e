"""Damaged model files are named in the error: a corrupt safetensors file, a config.json that is not JSON."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from fast_ast.backbones.ast import AST
from fast_ast.backbones.weights import load_pretrained
from fast_ast.modules.checkpoint import read_checkpoint

TINY = dict(input_fdim=32, input_tdim=48, fstride=8, tstride=8, embed_dim=32, depth=1, num_heads=2)


def test_a_truncated_safetensors_file_is_named(tmp_path):
    path = tmp_path / "encoder.safetensors"
    save_file({f"v.{k}": v.contiguous() for k, v in AST(3, **TINY).v.state_dict().items()}, str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="encoder.safetensors cannot be read as safetensors"):
        load_pretrained(AST(3, **TINY), str(path), fmt="encoder", prefix="v.")


def test_a_config_json_that_is_not_json_is_named(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"hidden_size": 32,')  # cut off
    save_file({"x": torch.zeros(1)}, str(hf / "model.safetensors"))
    with pytest.raises(ValueError, match=r"hf/config.json is not valid JSON \(.*line 1"):
        load_pretrained(AST(3, **TINY), str(hf), fmt="hf")
    export = tmp_path / "export"
    export.mkdir()
    (export / "config.json").write_text("format: fast_ast")  # YAML, not JSON
    save_file({"x": torch.zeros(1)}, str(export / "model.safetensors"))
    with pytest.raises(ValueError, match="export/config.json is not valid JSON"):
        read_checkpoint(export)
