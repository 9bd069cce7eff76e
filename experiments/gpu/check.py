"""The GPU check's sections (run by experiments/gpu/check.sh); `--dry-run`: the same code paths on the CPU, tiny.

Each section composes conf/bench.yaml (or runs python -m fast_ast.train) with its overrides, runs the bench
suite in this process and writes <out>/<section>.json; <out>/check.json holds every section's status,
seconds and overrides, <out>/summary.md the headline figures. Exit status 1 when any section failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

from hydra import compose, initialize_config_dir

from fast_ast.bench import frontend, memory, precision, tome
from fast_ast.resolvers import CONF_DIR, register_resolvers

# The bird-soundscape setting: the original AST at 10.24 s (1214 tokens), batch 10.
FULL = {
    "model": ["model/backbone=base384", "data.clip_seconds=10.24", "data.features.target_length=1024"],
    "device": "device=cuda",
    "compile_backend": "inductor",
    "train_batch": 10, "train_repeats": 10,
    "tome_batches": [1, 32, 128], "tome_r": 101, "repeats": 5,
    "frontend_cases": "[{batch_size: 16, seconds: 10.0}, {batch_size: 128, seconds: 10.0}, {batch_size: 64, seconds: 1.0}]",
    "memory_batches": "[2,4]", "memory_precisions": "[32-true,bf16-mixed]", "memory_r": "[0,101]", "memory_budget_gb": 80,
    "ddp": ["trainer=gpu", "++trainer.strategy=ddp", "data.train_size=512", "data.batch_size=64"],
}
# CPU, tiny: every section's code path in about a minute (aot_eager: the compiled path without C++ kernel builds).
DRY = {
    "model": ["model/backbone=base384", "model.backbone.embed_dim=32", "model.backbone.depth=2", "model.backbone.num_heads=2",
              "data.clip_seconds=1.0", "data.features.target_length=100"],
    "device": "device=cpu",
    "compile_backend": "aot_eager",
    "train_batch": 2, "train_repeats": 1,
    "tome_batches": [1, 2], "tome_r": 4, "repeats": 1,
    "frontend_cases": "[{batch_size: 2, seconds: 1.0}]",
    "memory_batches": "[1,2]", "memory_precisions": "[bf16-mixed]", "memory_r": "[4]", "memory_budget_gb": 4,
    "ddp": ["trainer=cpu", "++trainer.strategy=ddp", "data.train_size=16", "data.batch_size=8",
            "model.backbone.embed_dim=32", "model.backbone.depth=1", "model.backbone.num_heads=2"],
}


def bench_config(overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name="bench", overrides=overrides)


def section_train(s: dict) -> dict:
    cfg = bench_config([
        "suite=precision", s["device"], *s["model"], f"batch_size={s['train_batch']}",
        "precision_suite.contenders=[[32-true,false,0],[bf16-mixed,true,0]]", "precision_suite.eval=false",
        f"precision_suite.compile_backend={s['compile_backend']}", f"precision_suite.train_repeats={s['train_repeats']}",
        "precision_suite.train_warmup=2",
    ])
    result = precision.run(cfg)
    eager, compiled = result["rows"]
    result["headline"] = {
        "fp32_eager_it_s": 1 / eager["train_s"],
        "bf16_compile_it_s": 1 / compiled["train_s"],
        "speedup": compiled["train_speedup"],
        "compile_s": compiled.get("train_compile_s"),
    }
    return result


def section_tome_eval(s: dict) -> dict:
    runs = {}
    for batch in s["tome_batches"]:
        cfg = bench_config([
            "suite=tome", s["device"], *s["model"], f"tome.r=[0,{s['tome_r']}]", f"batch_size={batch}",
            "warmup=2", f"repeats={s['repeats']}",
        ])
        runs[str(batch)] = tome.run(cfg)
    middle = s["tome_batches"][len(s["tome_batches"]) // 2]
    cfg = bench_config([
        "suite=precision", s["device"], *s["model"], f"batch_size={middle}", "precision_suite.train=false",
        f"precision_suite.contenders=[[32-true,false,0],[bf16-mixed,false,0],[bf16-mixed,false,{s['tome_r']}]]",
        "warmup=2", f"repeats={s['repeats']}",
    ])
    levers = precision.run(cfg)
    return {
        "tome_runs": runs,
        "precision_levers": levers,
        "headline": {
            "tome_speedup_by_batch": {b: run["rows"][-1]["speedup"] for b, run in runs.items()},
            f"bf16_speedup_batch{middle}": levers["rows"][1]["eval_speedup"],
            f"bf16_tome_speedup_batch{middle}": levers["rows"][2]["eval_speedup"],
        },
    }


def section_frontend(s: dict) -> dict:
    cfg = bench_config(["suite=frontend", s["device"], f"frontend_suite.cases={s['frontend_cases']}", f"frontend_suite.repeats={s['repeats']}"])
    result = frontend.run(cfg)
    result["headline"] = {f"{row['batch_size']}x{row['seconds']}s": row for row in result["rows"]}
    return result


def section_ddp(s: dict, out: Path) -> dict:
    run_dir = out / "ddp_run"
    command = [
        sys.executable, "-m", "fast_ast.train", *s["ddp"], "trainer.devices=1", "trainer.max_epochs=1", "logger=none",
        "trainer.enable_progress_bar=false", "throughput.repeats=1", "test=false", f"hydra.run.dir={run_dir}",
    ]
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    (out / "ddp.log").write_text(process.stdout + process.stderr)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}; see ddp.log:\n{process.stderr[-2000:]}")
    results = json.loads((run_dir / "results.json").read_text())
    return {"command": command, "seconds": seconds, "results": results,
            "headline": {"status": results["status"], "val": results.get("monitor"), "seconds": seconds}}


def section_memory(s: dict) -> dict:
    cfg = bench_config([
        "suite=memory", s["device"], *s["model"], f"memory_suite.precisions={s['memory_precisions']}",
        f"memory_suite.tome_r={s['memory_r']}", f"memory_suite.batch_sizes={s['memory_batches']}",
        f"memory_suite.budget_gb={s['memory_budget_gb']}",
    ])
    result = memory.run(cfg)
    result["headline"] = {f"{row['precision']} r={row['r']}": {"GB_per_clip": row["per_clip_gb"], "max_batch": row["max_batch"]}
                          for row in result["rows"]}
    return result


def summary(status: dict, out: Path, dry_run: bool) -> str:
    lines = [f"# GPU check{' (CPU dry run, tiny sizes: not figures)' if dry_run else ''}", ""]
    for name, entry in status.items():
        lines.append(f"## {name}: {entry['status']} ({entry['seconds']:.0f} s)")
        if entry["status"] == "ok":
            headline = json.loads((out / f"{name}.json").read_text()).get("headline", {})
            lines.extend(f"- {key}: {value}" for key, value in headline.items())
        else:
            lines.append(f"- error: {entry['error']}")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks every section's code path")
    parser.add_argument("--sections", default="train,tome_eval,frontend,ddp,memory")
    args = parser.parse_args()
    settings = DRY if args.dry_run else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    sections = {
        "train": lambda: section_train(settings),
        "tome_eval": lambda: section_tome_eval(settings),
        "frontend": lambda: section_frontend(settings),
        "ddp": lambda: section_ddp(settings, args.out),
        "memory": lambda: section_memory(settings),
    }
    chosen = args.sections.split(",")
    unknown = [name for name in chosen if name not in sections]
    if unknown:
        parser.error(f"--sections: unknown {unknown}; choose from {list(sections)}")
    status = {}
    for name in chosen:
        started = time.perf_counter()
        try:
            (args.out / name).mkdir(exist_ok=True)
            with contextlib.chdir(args.out / name):  # the suites write their raw JSON/plots into the working directory
                result = sections[name]()
            (args.out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
            status[name] = {"status": "ok", "seconds": time.perf_counter() - started}
        except Exception as error:  # one section's failure must not lose the others' figures
            traceback.print_exc()
            status[name] = {"status": "failed", "seconds": time.perf_counter() - started, "error": f"{type(error).__name__}: {error}"}
        (args.out / "check.json").write_text(json.dumps({"dry_run": args.dry_run, "settings": settings, "sections": status}, indent=2))
        (args.out / "summary.md").write_text(summary(status, args.out, args.dry_run))
    print((args.out / "summary.md").read_text())
    return 0 if all(entry["status"] == "ok" for entry in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
