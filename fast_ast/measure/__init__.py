"""Measuring a model: timing (alternating rounds, median ratios, eval throughput) and tokens per block.

Used by every command's run record (fast_ast.results) and by the benchmark suites (fast_ast.bench).
"""
