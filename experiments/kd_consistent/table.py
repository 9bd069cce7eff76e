"""Prints the study's table (markdown) and a bar plot from the runs' results.json files.

    python experiments/kd_consistent/table.py outputs/kd_consistent

Rows: the teacher (outputs/kd_consistent/teacher) and one row per condition sweep (no_kd, clean_kd,
consistent_kd): mean ± sample standard deviation over its seeds. The per-sweep summaries and Pareto
plots are fast_ast.report's (<root>/<condition>/summary.md, pareto.png); this script writes
<root>/conditions.png, test accuracy per condition with ± std bars.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from fast_ast.results import RESULTS_FILE, read_results

CONDITIONS = {"no_kd": "no KD (10% labels)", "clean_kd": "clean single-view KD", "consistent_kd": "consistent KD (3 stored views)"}
METRICS = ("val/acc", "test/acc", "test/mAP")


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(root: str) -> None:
    root = Path(root)
    rows = []
    teacher = read_results(root / "teacher")
    rows.append(("teacher (100% labels)", [teacher], teacher["params"]["total"]))
    for name, label in CONDITIONS.items():
        runs = [read_results(p.parent) for p in sorted((root / name).glob(f"*/{RESULTS_FILE}"))]
        runs = [r for r in runs if r.get("status") == "completed"]
        if runs:
            rows.append((label, runs, runs[0]["params"]["total"]))
    print("| model | params | n | " + " | ".join(METRICS) + " | wall min / run |")
    print("|---|---|---|" + "---|" * len(METRICS) + "---|")
    for label, runs, params in rows:
        cells = []
        for metric in METRICS:
            mean, std = mean_std([r["metrics"][metric] for r in runs])
            cells.append(f"{mean:.3f}" if len(runs) == 1 else f"{mean:.3f} ± {std:.3f}")
        wall = statistics.mean(r["wall_time_s"] for r in runs) / 60
        print(f"| {label} | {params:,} | {len(runs)} | " + " | ".join(cells) + f" | {wall:.1f} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=120)
    students = rows[1:]
    means = [mean_std([r["metrics"]["test/acc"] for r in runs]) for _, runs, _ in students]
    axes.bar(range(len(students)), [m for m, _ in means], yerr=[s for _, s in means], capsize=4, color="tab:blue")
    axes.axhline(teacher["metrics"]["test/acc"], color="tab:red", linestyle="--", label="teacher")
    axes.set_xticks(range(len(students)), [label for label, _, _ in students], fontsize=8)
    axes.set_ylabel("test accuracy (mean ± std over seeds)")
    axes.set_title("tiny AST students, 10% of the labels, built-in corpus", fontsize=10)
    axes.legend()
    figure.tight_layout()
    figure.savefig(root / "conditions.png")
    print(f"\nwrote {root / 'conditions.png'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs/kd_consistent")
