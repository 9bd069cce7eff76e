"""Prints the study's accuracy table (markdown) from the runs' results.json files.

    python experiments/kd_synthetic/table.py outputs/kd_synthetic

Every directory under the root holding a results.json is one run. Runs that differ only in `seed` form
one row: mean ± sample standard deviation over the seeds, and n.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

from fast_ast.results import RESULTS_FILE, read_results


def setting(results: dict) -> tuple[str, str, int, int, str]:
    """(model, lambda, r, parameters, tokens per block) of one run."""
    kd, tome = results["kd"], results["tome"]
    name = "teacher" if kd["name"] == "none" else f"student ({kd['name']})"
    lam = "—" if kd["name"] == "none" else f"{kd['lambda']:g}"
    tokens = " ".join(map(str, results["tokens"]["per_layer"]))
    return name, lam, int(tome.get("r", 0)), results["params"]["total"], tokens


def mean_std(runs: list[dict], metric: str) -> str:
    """'mean ± std' of one metric over runs (the value itself for one run)."""
    values = [run["metrics"][metric] for run in runs]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main(root: str) -> None:
    runs = sorted(Path(root).rglob(RESULTS_FILE))
    if not runs:
        raise SystemExit(f"no {RESULTS_FILE} under {root}")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for path in runs:
        results = read_results(path.parent)
        groups[setting(results)].append(results)
    header = ("model", "lambda", "r", "params", "tokens per block", "n", "val acc", "test acc", "test mAP", "wall min / run")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for key in sorted(groups, key=lambda k: (k[0] != "teacher", k[2], -float(k[1]) if k[1] != "—" else 0)):
        members = groups[key]
        name, lam, r, params, tokens = key
        wall = statistics.mean(run["wall_time_s"] for run in members) / 60
        print(f"| {name} | {lam} | {r} | {params:,} | {tokens} | {len(members)} | {mean_std(members, 'val/acc')} | "
              f"{mean_std(members, 'test/acc')} | {mean_std(members, 'test/mAP')} | {wall:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs/kd_synthetic")
