"""Prints the study's accuracy table (markdown) from the runs' results.json files.

    python experiments/kd_synthetic/table.py outputs/kd_synthetic
Every directory under the root holding a results.json is one row: teacher or student, lambda, r, accuracy.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fast_ast.results import RESULTS_FILE, read_results


def row(results: dict) -> tuple:
    kd, tome = results["kd"], results["tome"]
    name = "teacher" if kd["name"] == "none" else f"student ({kd['name']})"
    lam = "—" if kd["name"] == "none" else f"{kd['lambda']:g}"
    metrics = results["metrics"]
    return (
        name, lam, str(tome.get("r", 0)), f"{results['params']['total']:,}", " ".join(map(str, results["tokens"]["per_layer"])),
        f"{metrics['val/acc']:.3f}", f"{metrics['test/acc']:.3f}", f"{metrics['test/mAP']:.3f}", f"{results['wall_time_s'] / 60:.1f}",
    )


def main(root: str) -> None:
    runs = sorted(Path(root).rglob(RESULTS_FILE))
    if not runs:
        raise SystemExit(f"no {RESULTS_FILE} under {root}")
    header = ("model", "lambda", "r", "params", "tokens per block", "val acc", "test acc", "test mAP", "wall min")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rows = sorted((row(read_results(path.parent)) for path in runs), key=lambda r: (r[0] != "teacher", int(r[2]), r[1]))
    for values in rows:
        print("| " + " | ".join(values) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs/kd_synthetic")
