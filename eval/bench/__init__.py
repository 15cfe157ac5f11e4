"""Benchmarks: codec speed and rate, decode cost of hostile streams, the server under load and attack."""
