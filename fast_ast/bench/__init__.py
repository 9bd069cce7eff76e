"""Benchmarks (`python -m fast_ast.bench suite=...`): speed is measured here, never in timed tests."""
