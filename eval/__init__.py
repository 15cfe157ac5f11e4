"""Offline studies and benchmarks for splitcodec (``python -m eval.<module>``)."""
