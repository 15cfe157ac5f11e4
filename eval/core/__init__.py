"""Shared machinery of the studies and benchmarks: activation cache, evaluation, reports, the runner."""
