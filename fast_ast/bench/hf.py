"""suite=hf: our AST forward vs transformers' ASTForAudioClassification on the same weights (eval, no grad).

Default: the original AST size (conf/model/backbone/base384.yaml) on 10.24 s = 1024 frames x 128 mel bins,
fstride = tstride = 10, i.e. 2 + 12 * 101 = 1214 tokens. transformers' model is built the way an export
would be loaded: our weights written as a Hugging Face directory (fast_ast.backbones.hf_keys), then
`from_pretrained`. Same process, alternating rounds, median of the per-round time ratios.

Settings: `hf_suite.*` and `device` from conf/bench.yaml.
    python -m fast_ast.bench suite=hf [hf_suite.batch_sizes=[1,2]] [hf_suite.repeats=3]
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from safetensors.torch import save_file

from fast_ast.backbones.ast import AST
from fast_ast.backbones.hf_keys import ast_to_hf, hf_config
from fast_ast.device import resolve_device
from fast_ast.device import device_description
from fast_ast.measure.timing import alternating_times, median_ratio
from fast_ast.resolvers import CONF_DIR

def build_pair(settings: DictConfig) -> tuple[AST, torch.nn.Module]:
    """(our AST with random weights, transformers' AST loaded from those weights), both in eval mode on CPU."""
    from transformers import ASTForAudioClassification

    backbone = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "backbone" / f"{settings.backbone}.yaml"))
    backbone.pop("name")
    # transformers' config default layer_norm_eps is 1e-12; the export carries ours, so both compute the same.
    ours = AST(settings.num_classes, input_fdim=settings.input_fdim, input_tdim=settings.input_tdim, **backbone).eval()
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "config.json").write_text(json.dumps(hf_config(ours)))
        save_file(ast_to_hf(ours.state_dict()), os.path.join(directory, "model.safetensors"))
        theirs = ASTForAudioClassification.from_pretrained(directory).eval()
    return ours, theirs


@torch.inference_mode()
def run(cfg: DictConfig) -> dict:
    settings = cfg.hf_suite
    device = resolve_device(cfg.device)
    ours, theirs = build_pair(settings)
    ours, theirs = ours.to(device), theirs.to(device)
    rows = []
    for batch_size in settings.batch_sizes:
        x = torch.randn(batch_size, settings.input_tdim, settings.input_fdim, device=device)
        difference = (ours(x) - theirs(input_values=x).logits).abs().max().item()
        times = alternating_times(
            {"fast_ast": lambda: ours(x), "transformers": lambda: theirs(input_values=x)},
            device, warmup=settings.warmup, repeats=settings.repeats,
        )
        rows.append({
            "batch_size": batch_size,
            "fast_ast_s": statistics.median(times["fast_ast"]),
            "transformers_s": statistics.median(times["transformers"]),
            "speedup": median_ratio(times["transformers"], times["fast_ast"]),  # > 1: ours is faster
            "max_abs_logit_diff": difference,
        })
    result = {
        "device": device_description(device),
        "backbone": settings.backbone,
        "tokens": ours.num_tokens,
        "transformers_attention": theirs.config._attn_implementation,
        "repeats": settings.repeats,
        "rows": rows,
    }
    table = Table(title=f"AST forward, fast_ast vs transformers — {result['device']}")
    for column in ("batch", "tokens", "fast_ast s", "transformers s", "speedup (median ratio)", "max |Δ logit|"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["batch_size"]), str(result["tokens"]), f"{row['fast_ast_s']:.3f}", f"{row['transformers_s']:.3f}",
            f"{row['speedup']:.3f}x", f"{row['max_abs_logit_diff']:.1e}",
        )
    Console().print(table)
    return result
