"""suite=tome: what Token Merging buys, per r, measured against r = 0 in the same run.

    python -m fast_ast.bench suite=tome tome_suite.r=[0,16,48,96] [model/backbone=base384 ...]

`tome_suite.r` lists the r values compared (each a constant r per layer; tome.inflection and
tome.prop_attn apply to all). Each is a plan (fast_ast.tome.plan_reduction) passed to the forward
pass, `backbone(features, reduction=plan)`: nothing is installed on the backbone. For every r: eval clips/s of the backbone on [B, T, F] features, its
ratio to r = 0 (median over alternating rounds), the tokens entering each block (counted at run time),
and the forward FLOPs from those tokens (fast_ast.tome.flops). Also the plain AST against r = 0 through
the plan (None) and against the ToMe block loop forced with r = 0 in every layer, and
for each r in `tome_suite.train_r` the training-step throughput (forward + backward + optimizer step)
against r = 0, and for each [rows, columns] of `tome_suite.patchout` the training step with PaSST's structured
patchout against r = 0. Results go to <run dir>/tome_bench.json and a plot of clips/s and FLOPs vs r.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from fast_ast.bench.throughput import build_bench_model
from fast_ast.device import resolve_device
from fast_ast.device import device_description
from fast_ast.measure.timing import alternating_times, median_ratio
from fast_ast.measure.tokens import tokens_per_layer
from fast_ast.modules.optim import build_optimizer
from fast_ast.tome import TokenReduction, plan_reduction
from fast_ast.tome.flops import ast_forward_flops


def requested_rs(cfg: DictConfig) -> list[int]:
    """tome_suite.r as the list of r values to compare, r = 0 (the reference) first."""
    rs = OmegaConf.to_container(cfg.tome_suite, resolve=True)["r"]
    rs = rs if isinstance(rs, list) else [rs]
    for r in rs:
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise ValueError(f"tome_suite.r lists constant r values (non-negative integers), got {r!r}")
    return [0] + [r for r in dict.fromkeys(rs) if r != 0]


def merging_for(backbone, r: int, tome: dict) -> TokenReduction | None:
    """The ToMe plan for a constant r (None for r = 0)."""
    return plan_reduction(backbone, r=r, inflection=tome["inflection"], prop_attn=tome["prop_attn"])


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [row["r"] for row in rows]
    figure, speed = plt.subplots(figsize=(6, 4))
    speed.plot(rs, [row["clips_per_s"] for row in rows], "o-", color="tab:blue", label="eval clips/s")
    speed.set_xlabel("r (token pairs merged per layer)")
    speed.set_ylabel("clips/s", color="tab:blue")
    flops = speed.twinx()
    flops.plot(rs, [row["gflops"] for row in rows], "s--", color="tab:red", label="GFLOPs / clip")
    flops.set_ylabel("GFLOPs per clip", color="tab:red")
    speed.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_title(result: dict) -> str:
    return f"ToMe-AST: {result['backbone']}\n{result['input']}, batch {result['batch_size']} — {result['device']}"


def run(cfg: DictConfig) -> dict:
    device = resolve_device(cfg.device)
    tome = OmegaConf.to_container(cfg.tome, resolve=True)
    rs = requested_rs(cfg)
    model = build_bench_model(cfg)
    backbone = model.backbone
    if backbone.token_reduction is not None:
        raise ValueError("suite=tome compares the r values of tome_suite.r on the plain model: leave tome.r at 0 (tome=none)")
    audio = torch.randn(cfg.batch_size, model.hparams.clip_samples, device=device) * 0.1
    with torch.no_grad():
        features = model.frontend(audio)  # [B, T, F] (not an inference tensor: the training step reuses it)
    mergings = {r: merging_for(backbone, r, tome) for r in rs}
    forced = TokenReduction("tome", [0] * backbone.depth, backbone.num_tokens, backbone.num_prefix_tokens, backbone.token_grid, tome["prop_attn"])

    # ---- eval: every r, plus the plain AST and the forced r = 0 ToMe loop, alternating ----------
    contenders = {"plain": lambda: backbone(features)}
    contenders["tome_loop_r0"] = lambda: backbone(features, reduction=forced)
    for r, merging in mergings.items():
        contenders[f"r{r}"] = lambda merging=merging: backbone(features, reduction=merging)
    with torch.inference_mode():
        times = alternating_times(contenders, device, cfg.warmup, cfg.repeats)
    counts = {r: tokens_per_layer(backbone, features[:1], merging) for r, merging in mergings.items()}

    # ---- training step (forward + backward + optimizer step) against r = 0 ---------------------
    train_rs = [r for r in cfg.tome_suite.train_r if r != 0]
    patchouts = [tuple(pair) for pair in OmegaConf.to_container(cfg.tome_suite, resolve=True).get("patchout") or []]
    train_times = {}
    if train_rs or patchouts:
        backbone.train()
        optimizer = build_optimizer(backbone.parameters(), OmegaConf.to_container(cfg.model.optim, resolve=True))
        targets = torch.randint(0, backbone.num_classes, (cfg.batch_size,), device=device)

        def train_step(merging: TokenReduction | None):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(backbone(features, reduction=merging), targets).backward()
            optimizer.step()

        train_contenders = {
            r: (lambda merging=mergings.get(r) or merging_for(backbone, r, tome): train_step(merging)) for r in [0, *train_rs]
        }
        for freq, time in patchouts:  # PaSST's structured patchout: training only, no merging
            plan = plan_reduction(backbone, freq_patchout=freq, time_patchout=time)
            train_contenders[f"patchout_f{freq}_t{time}"] = lambda plan=plan: train_step(plan)
        train_times = alternating_times(train_contenders, device, cfg.warmup, cfg.tome_suite.train_repeats)
        backbone.eval()

    batch = cfg.batch_size
    flops0 = ast_forward_flops(backbone)
    rows = []
    for r, merging in mergings.items():
        flops = ast_forward_flops(backbone, merging)
        row = {
            "r": r,
            "schedule": merging.schedule if merging else [0] * backbone.depth,
            "tokens_per_layer": counts[r],
            "gflops": flops / 1e9,
            "flops_ratio": flops / flops0,
            "clips_per_s": batch / statistics.median(times[f"r{r}"]),
            "speedup": median_ratio(times["r0"], times[f"r{r}"]),
        }
        if r in train_times:
            row["train_clips_per_s"] = batch / statistics.median(train_times[r])
            row["train_speedup"] = median_ratio(train_times[0], train_times[r])
        rows.append(row)
    f_dim, t_dim = backbone.token_grid
    patchout_rows = [
        {
            "freq_patchout": freq,
            "time_patchout": time,
            "tokens": backbone.num_prefix_tokens + (f_dim - freq) * (t_dim - time),
            "train_clips_per_s": batch / statistics.median(train_times[f"patchout_f{freq}_t{time}"]),
            "train_speedup": median_ratio(train_times[0], train_times[f"patchout_f{freq}_t{time}"]),
        }
        for freq, time in patchouts
    ]
    overhead = {
        "r0_vs_plain": median_ratio(times["r0"], times["plain"]),
        "tome_loop_r0_vs_plain": median_ratio(times["tome_loop_r0"], times["plain"]),
    }
    backbone_cfg = cfg.model.backbone
    result = {
        "device": device_description(device),
        "backbone": f"embed_dim {backbone_cfg.embed_dim}, depth {backbone_cfg.depth}, heads {backbone_cfg.num_heads}",
        "input": f"{features.shape[1]} frames x {features.shape[2]} bins, {backbone.num_tokens} tokens",
        "batch_size": batch,
        "repeats": cfg.repeats,
        "train_repeats": cfg.tome_suite.train_repeats,
        "tome": {k: v for k, v in tome.items() if k != "r"},
        "time_ratio_vs_plain": overhead,
        "rows": rows,
        "patchout": patchout_rows,
        "seconds": {"eval": times, "train": {(f"r{r}" if isinstance(r, int) else r): seconds for r, seconds in train_times.items()}},
    }
    report(result)
    out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tome_bench.json").write_text(json.dumps(result, indent=2))
    plot(rows, out_dir / "tome_bench.png", plot_title(result))
    Console().print(f"wrote {out_dir / 'tome_bench.json'} and {out_dir / 'tome_bench.png'}")
    return result


def report(result: dict) -> None:
    table = Table(title=f"Token Merging — {result['backbone']}, {result['input']}, batch {result['batch_size']} — {result['device']}")
    for column in ("r", "tokens first/last block", "GFLOPs", "FLOPs vs r=0", "eval clips/s", "speedup", "train clips/s", "train speedup"):
        table.add_column(column, justify="right")
    for row in result["rows"]:
        train = ("—", "—") if "train_speedup" not in row else (f"{row['train_clips_per_s']:.3f}", f"{row['train_speedup']:.2f}x")
        table.add_row(
            str(row["r"]),
            f"{row['tokens_per_layer'][0]} / {row['tokens_per_layer'][-1]}",
            f"{row['gflops']:.1f}",
            f"{row['flops_ratio']:.3f}",
            f"{row['clips_per_s']:.3f}",
            f"{row['speedup']:.2f}x",
            *train,
        )
    console = Console(width=140)
    console.print(table)
    for row in result["patchout"]:
        console.print(
            f"patchout {row['freq_patchout']} rows x {row['time_patchout']} columns ({row['tokens']} tokens): "
            f"train step {row['train_clips_per_s']:.3f} clips/s, {row['train_speedup']:.2f}x r=0"
        )
    overhead = result["time_ratio_vs_plain"]
    console.print(
        f"time vs plain AST: r=0 (no plan) {overhead['r0_vs_plain']:.3f}x, "
        f"ToMe block loop forced with r=0 {overhead['tome_loop_r0_vs_plain']:.3f}x"
    )
