"""`python -m fast_ast.report multirun_outputs/<sweep>`: one table and one picture for a whole sweep.

Reads every job's results.json and writes, into the sweep directory (or --out):
  summary.csv   one row per job: status, swept values, every metric, throughput, parameters, error
  summary.md    the same as a markdown table; fold sweeps (data.fold swept) as mean ± std per setting;
                the Pareto front; failed, unfinished and not-started jobs with their error or directory
  reduction.md, reduction_pareto.png  for eval sweeps (fast_ast.eval -m ... under many token reductions):
                the metric against clips/s at each measured batch size, GFLOPs, peak memory, device, fronts marked
  pareto.png    the monitored metric (val/acc, val/mAP, ...) against measured throughput, one point per
                run (per setting, with ± std bars, for fold sweeps), labelled by the swept values, the
                Pareto front (no other run both faster and better) drawn as a staircase

The jobs expected are those of the sweep's arguments (multirun.yaml), so a job that never started is
listed as well as one that failed (results.json status "failed") or never finished (no results.json).

Each job measured its own throughput where and when it ran; jobs on different machines, or on one
shared machine under changing load, are not comparable. --remeasure times every completed job's
evaluated weights again here, in alternating rounds (fast_ast.measure.timing), and uses those figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from fast_ast.device import device_description, resolve_device
from fast_ast.measure.timing import alternating_times
from fast_ast.cluster.sweep import job_overrides, override_key, override_value, sweep_arguments, swept_keys
from fast_ast.results import RESULTS_FILE, read_results
from fast_ast.run_dir import FAILED_SUFFIX

FOLD_KEY = "data.fold"
# Statuses of jobs without a usable result.
FAILED, UNFINISHED, NOT_STARTED = "failed", "unfinished", "not started"
COULD_NOT_WRITE = "failed: could not write"  # the job's failure went to <job dir>.failed.json


@dataclass
class Job:
    num: int
    directory: Path
    status: str                    # completed | failed | unfinished | not started
    overrides: list[str]
    results: dict = field(default_factory=dict)

    def value(self, key: str) -> str | None:
        """The value this job's overrides give `key` (e.g. "tome.r" -> "16")."""
        return next((override_value(o) for o in self.overrides if override_key(o) == key), None)

    def metric(self, name: str) -> float | None:
        value = self.results.get("metrics", {}).get(name)
        return None if value is None else float(value)

    @property
    def throughput(self) -> float | None:
        return (self.results.get("throughput") or {}).get("clips_per_s")


def evaluated_checkpoint(job: Job) -> str:
    checkpoints = job.results.get("checkpoints") or {}
    path = checkpoints.get("evaluated") or checkpoints.get("averaged") or checkpoints.get("best") or checkpoints.get("last")
    if not path:
        raise ValueError(f"job {job.num} ({job.directory}): results.json names no checkpoint to re-measure")
    return path


@torch.inference_mode()
def remeasure_throughput(jobs: list[Job], device: str, batch_size: int, repeats: int) -> None:
    """Replaces each completed job's throughput by eval clips/s (waveform -> logits) of its evaluated
    weights timed here: every job once per round, in turn, median over `repeats` rounds."""
    device = resolve_device(device)
    calls = {}
    for job in (j for j in jobs if j.status == "completed"):
        model = job_model(job, device)
        example = torch.randn(batch_size, model.hparams.clip_samples, device=device) * 0.1
        calls[job.num] = lambda model=model, example=example: model(example)
    seconds = alternating_times(calls, device, warmup=1, repeats=repeats)
    for job in jobs:
        if job.num in seconds:
            job.results["throughput"] = {
                "clips_per_s": batch_size / statistics.median(seconds[job.num]),
                "batch_size": batch_size,
                "repeats": repeats,
                "device": device_description(device) + " (re-measured)",
            }


def job_model(job: Job, device: torch.device):
    """The model a completed job measured: its evaluated checkpoint, run with the token reduction the
    job used (an eval job's `tome`; a training job's checkpoint carries its own)."""
    from fast_ast.inference.model import load_for_inference

    tome = job.results.get("tome") if job.results.get("task") == "eval" else None
    return load_for_inference(evaluated_checkpoint(job), tome, device)


def read_job(num: int, directory: Path, expected: list[str]) -> Job:
    fallback = directory.parent / f"{directory.name}{FAILED_SUFFIX}"  # fast_ast.run_dir.write_failure
    if not (directory / RESULTS_FILE).is_file() and fallback.is_file():
        record = json.loads(fallback.read_text())
        return Job(num, directory, COULD_NOT_WRITE, list(record.get("overrides", expected)), record)
    if (directory / RESULTS_FILE).is_file():
        results = read_results(directory)
        return Job(num, directory, results.get("status", FAILED), list(results.get("overrides", expected)), results)
    overrides_file = directory / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        expected = list(OmegaConf.to_container(OmegaConf.load(overrides_file), resolve=False))
    return Job(num, directory, UNFINISHED if directory.is_dir() else NOT_STARTED, expected)


def collect_jobs(sweep_dir: Path) -> tuple[list[str], list[Job]]:
    """(swept keys, every job of the sweep by number: the expected ones and any other numbered directory)."""
    arguments = sweep_arguments(sweep_dir)
    expected = job_overrides(arguments)
    numbers = set(range(len(expected))) | {int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()}
    jobs = [read_job(n, sweep_dir / str(n), expected[n] if n < len(expected) else []) for n in sorted(numbers)]
    return swept_keys(arguments), jobs


def short_names(keys: list[str]) -> dict[str, str]:
    """"tome.r" -> "r", "kd.lambda" -> "lambda"; the full key where the last parts would collide."""
    last = [key.lstrip("+~").rsplit(".", 1)[-1] for key in keys]
    return {key: name if last.count(name) == 1 else key for key, name in zip(keys, last)}


def label(job: Job, keys: list[str], names: dict[str, str]) -> str:
    parts = [f"{names[key]}={job.value(key)}" for key in keys]
    return ", ".join(parts) if parts else f"job {job.num}"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates (both maximised), by x ascending."""
    front = [
        i for i, (x, y) in enumerate(points)
        if not any(x2 >= x and y2 >= y and (x2 > x or y2 > y) for x2, y2 in points)
    ]
    return sorted(front, key=lambda i: points[i][0])


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1; None for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


@dataclass
class Point:
    """One point of the plot: a run, or a setting's mean over folds."""
    label: str
    throughput: float
    metric: float
    throughput_std: float | None = None
    metric_std: float | None = None
    count: int = 1


def fold_points(jobs: list[Job], keys: list[str], names: dict[str, str], metric: str) -> list[Point]:
    """Completed jobs grouped by every swept value but the fold: mean ± std of metric and throughput."""
    setting_keys = [key for key in keys if key != FOLD_KEY]
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        if job.status == "completed" and job.metric(metric) is not None:
            groups.setdefault(label(job, setting_keys, names), []).append(job)
    points = []
    for name, members in groups.items():
        metric_mean, metric_std = mean_std([j.metric(metric) for j in members])
        speed_mean, speed_std = mean_std([j.throughput for j in members])
        points.append(Point(name, speed_mean, metric_mean, speed_std, metric_std, len(members)))
    return points


def run_points(jobs: list[Job], keys: list[str], names: dict[str, str], metric: str) -> list[Point]:
    return [
        Point(label(job, keys, names), job.throughput, job.metric(metric))
        for job in jobs
        if job.status == "completed" and job.metric(metric) is not None and job.throughput is not None
    ]


def monitored_metric(jobs: list[Job]) -> str:
    names = {job.results["monitor"]["name"] for job in jobs if job.status == "completed" and "monitor" in job.results}
    if len(names) > 1:
        raise ValueError(f"the jobs monitor different metrics {sorted(names)}: choose one with --metric")
    return names.pop() if names else "val/acc"


def fmt(value: float | None, digits: int) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def fmt_pm(mean: float, std: float | None, digits: int) -> str:
    return f"{mean:.{digits}f} ± {fmt(std, digits)}"


def write_csv(path: Path, jobs: list[Job], keys: list[str]) -> None:
    metric_names = sorted({name for job in jobs for name in job.results.get("metrics", {})})
    columns = ["job", "status", *keys, *metric_names, "monitor", "monitor_best", "throughput_clips_per_s",
               "throughput_device", "params_total", "params_trainable", "tokens_input", "wall_time_s", "error", "overrides", "directory"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for job in jobs:
            r = job.results
            monitor = r.get("monitor") or {}
            writer.writerow([
                job.num, job.status, *[job.value(k) for k in keys], *[job.metric(m) for m in metric_names],
                monitor.get("name"), monitor.get("best"), job.throughput, (r.get("throughput") or {}).get("device"),
                (r.get("params") or {}).get("total"), (r.get("params") or {}).get("trainable"),
                (r.get("tokens") or {}).get("input"), r.get("wall_time_s"), r.get("error"), " ".join(job.overrides), job.directory,
            ])


def markdown_cell(value) -> str:
    """A table cell on one line: pipes escaped, line breaks (a multi-line error, a traceback) as <br>."""
    text = str(value).replace("|", "\\|").replace("\r\n", "\n").replace("\r", "\n")
    return "<br>".join(line.strip() for line in text.split("\n"))


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]


CLASSIFICATION_METRICS = ("acc", "balanced_acc", "precision", "recall", "f1", "precision_macro", "recall_macro", "f1_macro", "mAP")


def classification_section(jobs: list[Job]) -> list[str]:
    """summary.md's table of the classification metrics (fast_ast.modules.metrics) the completed jobs have,
    from their final test evaluation (val when no job was tested); empty when none has any."""
    done = [job for job in jobs if job.status == "completed"]
    stage = "test" if any(job.metric(f"test/{m}") is not None for job in done for m in CLASSIFICATION_METRICS) else "val"
    names = [m for m in CLASSIFICATION_METRICS if any(job.metric(f"{stage}/{m}") is not None for job in done)]
    if not names:
        return []
    rows = [[job.num, *[fmt(job.metric(f"{stage}/{m}"), 4) for m in names]] for job in done]
    return ["", f"## Classification metrics ({stage}/, final evaluation)", "", *markdown_table(["job", *names], rows)]


def markdown(sweep_dir: Path, jobs: list[Job], keys: list[str], names: dict[str, str], metric: str, points: list[Point], front: list[int], folds: bool) -> str:
    counts = {status: sum(j.status == status for j in jobs) for status in ("completed", FAILED, COULD_NOT_WRITE, UNFINISHED, NOT_STARTED)}
    devices = sorted({(j.results.get("throughput") or {}).get("device") for j in jobs if j.throughput is not None})
    lines = [
        f"# Sweep {sweep_dir.name}",
        "",
        f"{len(jobs)} jobs: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n) + ".",
        f"Metric: `{metric}` (final evaluation). Throughput: eval clips/s on {', '.join(devices) or '—'}.",
        "",
        f"![{metric} against throughput](pareto.png)",
        "",
    ]
    rows = [
        [job.num, *[job.value(k) for k in keys], job.status, fmt(job.metric(metric), 4), fmt(job.throughput, 1),
         f"{job.results['params']['total']:,}" if "params" in job.results else "—"]
        for job in jobs
    ]
    lines += markdown_table(["job", *[names[k] for k in keys], "status", metric, "clips/s", "params"], rows)
    if folds:
        lines += ["", f"## Mean ± std over folds ({FOLD_KEY}; sample std, n - 1)", ""]
        lines += markdown_table(
            ["setting", "folds", metric, "clips/s"],
            [[p.label, p.count, fmt_pm(p.metric, p.metric_std, 4), fmt_pm(p.throughput, p.throughput_std, 1)] for p in points],
        )
    lines += classification_section(jobs)
    lines += ["", f"## Pareto front ({metric} and throughput, both higher is better)", ""]
    lines += [f"- {points[i].label}: {metric} {points[i].metric:.4f} at {points[i].throughput:.1f} clips/s" for i in front] or ["- (no completed runs)"]
    problems = [job for job in jobs if job.status != "completed"]
    lines += ["", "## Failed and unfinished jobs", ""]
    if problems:
        lines += markdown_table(
            ["job", "status", "overrides", "error or directory"],
            [[j.num, j.status, " ".join(j.overrides), j.results.get("error") or str(j.directory)] for j in problems],
        )
    else:
        lines.append("None: every job completed.")
    return "\n".join(lines) + "\n"


def plot(path: Path, points: list[Point], front: list[int], metric: str, title: str, left_out: int, speed_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 5), dpi=120)
    on_front = set(front)
    for i, p in enumerate(points):
        style = {"color": "tab:red", "zorder": 3} if i in on_front else {"color": "tab:blue", "alpha": 0.8}
        axes.errorbar(p.throughput, p.metric, xerr=p.throughput_std, yerr=p.metric_std, fmt="o", capsize=3, **style)
        axes.annotate(p.label, (p.throughput, p.metric), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if front:
        xs, ys = [points[i].throughput for i in front], [points[i].metric for i in front]
        axes.plot(xs, ys, drawstyle="steps-pre", color="tab:red", linestyle="--", linewidth=1, label="Pareto front")
        axes.legend(loc="best", title="higher and further right is better", title_fontsize=8)
    axes.margins(x=0.15, y=0.1)  # room for the labels
    axes.set_xlabel(speed_label)
    axes.set_ylabel(metric)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    if left_out:
        figure.text(0.01, 0.005, f"not plotted: {left_out} failed or unfinished job(s), see summary.md", fontsize=8, color="tab:gray")
    figure.savefig(path)
    plt.close(figure)


def report(
    sweep_dir: str | Path, out_dir: str | Path | None = None, metric: str | None = None,
    remeasure: bool = False, device: str = "auto", batch_size: int = 8, repeats: int = 10,
) -> dict[str, Path]:
    """Writes summary.csv, summary.md and pareto.png for a sweep directory; returns their paths.
    remeasure: time every completed job here (see the module docstring) on `device`."""
    sweep_dir = Path(sweep_dir)
    out_dir = Path(out_dir) if out_dir is not None else sweep_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    keys, jobs = collect_jobs(sweep_dir)
    if remeasure:
        remeasure_throughput(jobs, device, batch_size, repeats)
    names = short_names(keys)
    metric = metric or monitored_metric(jobs)
    folds = FOLD_KEY in keys
    points = (fold_points if folds else run_points)(jobs, keys, names, metric)
    front = pareto_front([(p.throughput, p.metric) for p in points])
    paths = {"csv": out_dir / "summary.csv", "markdown": out_dir / "summary.md", "plot": out_dir / "pareto.png"}
    write_csv(paths["csv"], jobs, keys)
    paths["markdown"].write_text(markdown(sweep_dir, jobs, keys, names, metric, points, front, folds))
    left_out = sum(job.status != "completed" for job in jobs)
    title = f"{sweep_dir.name}: {metric} vs throughput" + (f" (mean ± std over {FOLD_KEY})" if folds else "")
    speed_label = "eval clips/s, " + ("re-measured side by side" if remeasure else "as measured in each job")
    plot(paths["plot"], points, front, metric, title, left_out, speed_label)
    if any(job.results.get("throughput_by_batch") for job in jobs):
        if remeasure:
            remeasure_by_batch(jobs, device, repeats)
        paths.update(reduction_report(out_dir, sweep_dir, jobs, keys, names, metric, remeasure))
    return paths


# ---- eval sweeps (python -m fast_ast.eval -m ckpt_path=... <reductions>): the hardware-honest report ----


def batch_sizes_of(jobs: list[Job]) -> list[int]:
    return sorted({int(b) for job in jobs for b in (job.results.get("throughput_by_batch") or {})})


def batch_throughput(job: Job, batch_size: int) -> float | None:
    entry = (job.results.get("throughput_by_batch") or {}).get(str(batch_size))
    return None if entry is None else entry["clips_per_s"]


@torch.inference_mode()
def remeasure_by_batch(jobs: list[Job], device: str, repeats: int) -> None:
    """Replaces every completed job's throughput_by_batch by clips/s timed here, in one process: each
    (job, batch size) once per round, in turn, median over `repeats` rounds."""
    from fast_ast.tome.cost import throughput_by_batch

    device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
    sizes = batch_sizes_of(jobs)
    models = {job.num: job_model(job, device) for job in jobs if job.status == "completed" and job.results.get("throughput_by_batch")}
    examples = {}
    calls = {}
    for num, model in models.items():
        for b in sizes:
            examples[num, b] = torch.randn(b, model.hparams.clip_samples, device=device) * 0.1
            calls[num, b] = lambda model=model, x=examples[num, b]: model(x)
    seconds = alternating_times(calls, device, warmup=1, repeats=repeats)
    described = device_description(device)
    for job in jobs:
        if job.num in models:
            job.results["throughput_by_batch"] = {
                str(b): {"clips_per_s": b / statistics.median(seconds[job.num, b]), "batch_size": b, "repeats": repeats, "device": described}
                for b in sizes
            }


def reduction_rows(jobs: list[Job], keys: list[str], names: dict[str, str], metric: str) -> tuple[list[Job], dict[int, list[int]]]:
    """(completed jobs with a metric and per-batch throughput, {batch size: indices of those on its Pareto front})."""
    usable = [j for j in jobs if j.status == "completed" and j.metric(metric) is not None and j.results.get("throughput_by_batch")]
    fronts = {}
    for b in batch_sizes_of(usable):
        points = [(batch_throughput(j, b) or 0.0, j.metric(metric)) for j in usable]
        fronts[b] = pareto_front(points)
    return usable, fronts


def reduction_markdown(sweep_dir: Path, usable: list[Job], fronts: dict[int, list[int]], keys: list[str], names: dict[str, str], metric: str, remeasured: bool) -> str:
    devices = sorted({entry["device"] for j in usable for entry in j.results["throughput_by_batch"].values()})
    sizes = sorted(fronts)
    header = ["setting", metric, *[f"clips/s b={b}" for b in sizes], "GFLOPs", "peak MB", "tokens per layer"]
    rows = []
    for i, job in enumerate(usable):
        speeds = [fmt(batch_throughput(job, b), 1) + (" *" if i in fronts[b] else "") for b in sizes]
        tokens = (job.results.get("tokens") or {}).get("per_layer") or []
        rows.append([label(job, keys, names), fmt(job.metric(metric), 4), *speeds, fmt(job.results.get("gflops"), 3),
                     fmt(job.results.get("peak_memory_mb"), 1), " ".join(map(str, tokens))])
    lines = [
        f"# Token reduction: {sweep_dir.name}",
        "",
        f"Device: {', '.join(devices) or '—'}" + (" (re-measured side by side in one process, alternating, median)" if remeasured else " (as measured in each job)") + ".",
        f"`*`: on the Pareto front of {metric} against clips/s at that batch size (no other setting both faster and better).",
        "GFLOPs: forward FLOPs per clip (matmuls, fast_ast.tome.flops); peak MB: tensors one forward of a batch allocates.",
        "",
        "![Pareto fronts per batch size](reduction_pareto.png)",
        "",
    ]
    return "\n".join(lines + markdown_table(header, rows)) + "\n"


def reduction_plot(path: Path, usable: list[Job], fronts: dict[int, list[int]], keys: list[str], names: dict[str, str], metric: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(fronts)
    figure, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4.5), dpi=110, squeeze=False)
    for ax, b in zip(axes[0], sizes):
        on_front = set(fronts[b])
        for i, job in enumerate(usable):
            x, y = batch_throughput(job, b), job.metric(metric)
            ax.plot(x, y, "o", color="tab:red" if i in on_front else "tab:blue", zorder=3 if i in on_front else 2)
            ax.annotate(label(job, keys, names), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6)
        xs, ys = [batch_throughput(usable[i], b) for i in fronts[b]], [usable[i].metric(metric) for i in fronts[b]]
        ax.plot(xs, ys, drawstyle="steps-pre", color="tab:red", linestyle="--", linewidth=1, label="Pareto front")
        ax.set_xlabel(f"clips/s at batch size {b}")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.margins(x=0.2, y=0.1)
        ax.legend(loc="lower left", fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def reduction_report(out_dir: Path, sweep_dir: Path, jobs: list[Job], keys: list[str], names: dict[str, str], metric: str, remeasured: bool) -> dict[str, Path]:
    """reduction.md (metric, clips/s per batch size, GFLOPs, peak memory, fronts marked) and reduction_pareto.png."""
    usable, fronts = reduction_rows(jobs, keys, names, metric)
    paths = {"reduction_markdown": out_dir / "reduction.md", "reduction_plot": out_dir / "reduction_pareto.png"}
    paths["reduction_markdown"].write_text(reduction_markdown(sweep_dir, usable, fronts, keys, names, metric, remeasured))
    devices = sorted({entry["device"] for j in usable for entry in j.results["throughput_by_batch"].values()})
    reduction_plot(paths["reduction_plot"], usable, fronts, keys, names, metric, f"{sweep_dir.name}: {metric} vs measured clips/s — {', '.join(devices)}")
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fast_ast.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a Hydra sweep directory, e.g. multirun_outputs/train_2025-01-01_12-00-00_ab12cd")
    parser.add_argument("--out", default=None, help="where to write the outputs (default: the sweep directory)")
    parser.add_argument("--metric", default=None, help="metric on the y axis (default: the jobs' monitored metric)")
    parser.add_argument("--remeasure", action="store_true", help="time every completed job's weights here, in alternating rounds")
    parser.add_argument("--device", default="auto", help="--remeasure on: auto | cpu | cuda")
    parser.add_argument("--batch-size", type=int, default=8, help="--remeasure: clips per timed call")
    parser.add_argument("--repeats", type=int, default=10, help="--remeasure: timed rounds (the median is kept)")
    args = parser.parse_args(argv)
    paths = report(args.sweep_dir, args.out, args.metric, args.remeasure, args.device, args.batch_size, args.repeats)
    print(paths["markdown"].read_text())
    for path in paths.values():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
