"""Cross-validation summary: mean +- std of a metric over the runs of a fold sweep.

    python -m fast_ast.train -m +experiment=esc50_ast data.root=<ESC-50> data.fold=1,2,3,4,5
    python -m fast_ast.data.folds multirun_outputs/<sweep> [--metric test/acc]

Reads every <sweep>/*/results.json (one per fold); std is the sample standard deviation (n - 1).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from fast_ast.results import RESULTS_FILE, read_results


def fold_summary(run_dirs: list[Path], metric: str = "test/acc") -> dict:
    """{"metric", "mean", "std", "n", "runs": {run_dir: value}} over the runs' results.json."""
    values = {}
    for run_dir in run_dirs:
        results = read_results(run_dir)
        if metric not in results.get("metrics", {}):
            raise KeyError(f"{run_dir / RESULTS_FILE} has no metric {metric!r} (has {sorted(results.get('metrics', {}))})")
        values[str(run_dir)] = float(results["metrics"][metric])
    if not values:
        raise ValueError("no runs to summarise")
    numbers = list(values.values())
    std = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
    return {"metric": metric, "mean": statistics.fmean(numbers), "std": std, "n": len(numbers), "runs": values}


def sweep_runs(sweep_dir: Path) -> list[Path]:
    """The job directories of a Hydra sweep that hold a results.json, in job order."""
    runs = [path.parent for path in sweep_dir.glob(f"*/{RESULTS_FILE}")]
    if not runs:
        raise FileNotFoundError(f"no */{RESULTS_FILE} under {sweep_dir}")
    return sorted(runs, key=lambda path: (not path.name.isdigit(), int(path.name) if path.name.isdigit() else 0, path.name))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="mean +- std of a metric over the folds of a sweep")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", default="test/acc")
    args = parser.parse_args(argv)
    summary = fold_summary(sweep_runs(args.sweep_dir), args.metric)
    for run, value in summary["runs"].items():
        print(f"{run}: {value:.4f}")
    print(f"{summary['metric']}: {summary['mean']:.4f} +- {summary['std']:.4f} over {summary['n']} folds")
    return summary


if __name__ == "__main__":
    main()
