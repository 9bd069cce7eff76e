"""suite=precision: what bf16 autocast, torch.compile and ToMe each buy, against the plain float32 eager AST.

    python -m fast_ast.bench suite=precision 'precision_suite.precisions=[32-true,bf16-mixed]' \
        'precision_suite.compile=[false,true]' 'precision_suite.tome_r=[0,101]' [model/backbone=base384 ...]

Every (precision, compile, r) combination is a contender on the same features [B, T, F] and weights:
eval forward (no grad) and, with precision_suite.train, the training step (forward + cross-entropy +
backward + the configured optimizer's step). All run in this process, alternating round by round after
warm-up; speedups are medians of per-round ratios against (32-true, eager, r = 0). A compiled contender
is a copy of the backbone compiled in place (fast_ast.modules.compile) per r, so eager and compiled never
share a compile cache; its first call (the compile) is timed apart and reported as `compile_s`, the
steady-state figures exclude it. `max_abs_logit_diff` is each contender's eval logits against the
reference's; `top1_agreement` the fraction of clips whose arg-max class is the same.
Results: <run dir>/precision_bench.json.
"""

from __future__ import annotations

import copy
import itertools
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from fast_ast.bench.throughput import build_bench_model
from fast_ast.device import device_description, resolve_device
from fast_ast.measure.timing import alternating_times, median_ratio, synchronize
from fast_ast.modules.compile import compile_backbone
from fast_ast.modules.optim import build_optimizer
from fast_ast.precision import autocast, check_precision, native_cpu_bf16
from fast_ast.tome import apply_tome
from fast_ast.tome.flops import ast_forward_flops

REFERENCE = ("32-true", False, 0)


def contender_name(precision: str, compiled: bool, r: int) -> str:
    return f"{precision}/{'compiled' if compiled else 'eager'}/r{r}"


def chosen_contenders(settings: DictConfig) -> list[tuple[str, bool, int]]:
    """(precision, compile, r) triples: `contenders` when given, else precisions x compile x tome_r; reference first."""
    if settings.contenders:
        combos = [(str(p), bool(c), int(r)) for p, c, r in settings.contenders]
    else:
        rs = [0] + [r for r in dict.fromkeys(settings.tome_r) if r != 0]
        combos = list(itertools.product(settings.precisions, settings.compile, rs))
    return [REFERENCE] + [combo for combo in dict.fromkeys(combos) if combo != REFERENCE]


def run(cfg: DictConfig) -> dict:
    settings = cfg.precision_suite
    device = resolve_device(cfg.device)
    if not (settings.eval or settings.train):
        raise ValueError("precision_suite.eval and precision_suite.train are both false: nothing to measure")
    combos = chosen_contenders(settings)
    tome = OmegaConf.to_container(cfg.tome, resolve=True)
    base = cfg.copy()
    base.tome.r = 0
    base.model.compile = False  # the suite compiles its own copies
    model = build_bench_model(base)
    for precision in dict.fromkeys(p for p, _, _ in combos):
        check_precision(precision, device, "precision_suite.precisions")
    eager = model.backbone
    audio = torch.randn(cfg.batch_size, model.hparams.clip_samples, device=device) * 0.1
    with torch.no_grad():
        features = model.frontend(audio)
    targets = torch.randint(0, eager.num_classes, (cfg.batch_size,), device=device)

    backbones = {}  # (compiled, r) -> backbone with that ToMe setting (a compiled copy per r)
    reductions = {}  # r -> the installed TokenReduction (None for r = 0)
    for compiled, r in dict.fromkeys((c, r) for _, c, r in combos):
        backbone = copy.deepcopy(eager) if (compiled or r) else eager
        merging = apply_tome(backbone, r=r, inflection=tome["inflection"], prop_attn=tome["prop_attn"])
        reductions[r] = merging
        backbones[compiled, r] = compile_backbone(backbone, settings.compile_backend) if compiled else backbone

    def eval_call(precision, compiled, r):
        backbone = backbones[compiled, r]

        def call():
            with torch.no_grad(), autocast(precision, device):
                return backbone(features)

        return call

    optimizers = {}

    def train_call(precision, compiled, r):
        backbone = backbones[compiled, r]
        if id(backbone) not in optimizers:
            optimizers[id(backbone)] = build_optimizer(backbone.parameters(), OmegaConf.to_container(cfg.model.optim, resolve=True))
        optimizer = optimizers[id(backbone)]

        def step():
            backbone.train()
            optimizer.zero_grad(set_to_none=True)
            with autocast(precision, device):
                loss = F.cross_entropy(backbone(features), targets)
            loss.backward()
            optimizer.step()
            backbone.eval()

        return step

    # the first call of each contender compiles (compiled ones) or warms up; timed apart
    first_call, logits, eval_times = {}, {}, {}
    if settings.eval:
        for combo in combos:
            start = time.perf_counter()
            logits[combo] = eval_call(*combo)().float()
            synchronize(device)
            first_call[combo] = time.perf_counter() - start
        eval_times = alternating_times(
            {contender_name(*combo): eval_call(*combo) for combo in combos}, device, cfg.warmup, cfg.repeats
        )
    train_times, train_first = {}, {}
    if settings.train:
        steps = {combo: train_call(*combo) for combo in combos}
        for combo, step in steps.items():
            start = time.perf_counter()
            step()
            synchronize(device)
            train_first[combo] = time.perf_counter() - start
        train_times = alternating_times(
            {contender_name(*combo): step for combo, step in steps.items()}, device, settings.train_warmup, settings.train_repeats
        )

    reference = contender_name(*REFERENCE)
    flops0 = ast_forward_flops(eager)
    rows = []
    for combo in combos:
        name = contender_name(*combo)
        precision, compiled, r = combo
        row = {
            "precision": precision,
            "compile": compiled,
            "r": r,
            "flops_ratio": ast_forward_flops(eager, reductions[r]) / flops0,
        }
        if settings.eval:
            eval_median = statistics.median(eval_times[name])
            row.update({
                "eval_s": eval_median,
                "eval_clips_per_s": cfg.batch_size / eval_median,
                "eval_speedup": median_ratio(eval_times[reference], eval_times[name]),
                "eval_first_call_s": first_call[combo],
                "max_abs_logit_diff": (logits[combo] - logits[REFERENCE]).abs().max().item(),
                "top1_agreement": (logits[combo].argmax(-1) == logits[REFERENCE].argmax(-1)).float().mean().item(),
            })
            if compiled:
                row["compile_s"] = first_call[combo] - eval_median
        if settings.train:
            train_median = statistics.median(train_times[name])
            row.update({
                "train_s": train_median,
                "train_clips_per_s": cfg.batch_size / train_median,
                "train_speedup": median_ratio(train_times[reference], train_times[name]),
                "train_first_call_s": train_first[combo],
            })
            if compiled:
                row["train_compile_s"] = train_first[combo] - train_median
        rows.append(row)
    backbone_cfg = cfg.model.backbone
    result = {
        "device": device_description(device),
        "native_cpu_bf16": native_cpu_bf16(),
        "backbone": f"embed_dim {backbone_cfg.embed_dim}, depth {backbone_cfg.depth}, heads {backbone_cfg.num_heads}",
        "input": f"{features.shape[1]} frames x {features.shape[2]} bins, {eager.num_tokens} tokens",
        "batch_size": cfg.batch_size,
        "repeats": cfg.repeats,
        "train_repeats": settings.train_repeats if settings.train else 0,
        "compile_backend": settings.compile_backend,
        "rows": rows,
        "seconds": {"eval": eval_times, "train": train_times},
    }
    report(result)
    out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "precision_bench.json").write_text(json.dumps(result, indent=2))
    Console().print(f"wrote {out_dir / 'precision_bench.json'}")
    return result


def report(result: dict) -> None:
    table = Table(title=f"precision / compile / ToMe — {result['backbone']}, {result['input']}, batch {result['batch_size']} — {result['device']}")
    columns = ("precision", "compile", "r", "FLOPs", "eval clips/s", "eval speedup", "compile s", "max |Δ logit|", "top-1 agree",
               "train clips/s", "train speedup")
    for column in columns:
        table.add_column(column, justify="right")
    for row in result["rows"]:
        evaluated = "eval_s" in row
        compile_s = row.get("compile_s", row.get("train_compile_s"))
        table.add_row(
            row["precision"], str(row["compile"]), str(row["r"]), f"{row['flops_ratio']:.3f}",
            f"{row['eval_clips_per_s']:.3f}" if evaluated else "—", f"{row['eval_speedup']:.2f}x" if evaluated else "—",
            f"{compile_s:.1f}" if compile_s is not None else "—",
            f"{row['max_abs_logit_diff']:.2e}" if evaluated else "—", f"{row['top1_agreement']:.2f}" if evaluated else "—",
            f"{row['train_clips_per_s']:.3f}" if "train_s" in row else "—",
            f"{row['train_speedup']:.2f}x" if "train_s" in row else "—",
        )
    Console(width=160).print(table)
