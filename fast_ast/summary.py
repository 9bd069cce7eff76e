"""The end-of-run summary printed by train/eval: metrics, throughput, where the files are."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_summary(results: dict) -> None:
    table = Table(title=f"fast_ast {results['task']} — {results['status']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for name, value in sorted(results.get("metrics", {}).items()):
        table.add_row(name, f"{value:.4f}")
    throughput = results.get("throughput")
    if throughput:
        table.add_row("throughput", f"{throughput['clips_per_s']:.1f} clips/s (batch {throughput['batch_size']}, {throughput['device']})")
    if "params" in results:
        table.add_row("parameters", f"{results['params']['total']:,} ({results['params']['trainable']:,} trainable)")
    if "tokens" in results:
        table.add_row("tokens per layer", " ".join(map(str, results["tokens"]["per_layer"])))
    for name, path in results.get("checkpoints", {}).items():
        if path:
            table.add_row(f"{name} checkpoint", path)
    table.add_row("run directory", results["run_dir"])
    Console().print(table)
