"""Helpers that build and doctor streams for the hostile-input tests."""

import numpy as np

import splitcodec as sc
from eval.core.streams import resign  # noqa: F401 (re-signing doctored streams, shared with the benchmarks)


def sample_stream(levels=4, model="spatial", shape=(4, 8, 8), seed=0):
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(size=shape), 0).astype(np.float32)
    q = sc.UniformQuantizer(0.0, 2.0, levels)
    return sc.FeatureCodec(q, model).encode(x)


def golden_input(shape):
    """Deterministic activations from integer arithmetic only (bit-exact everywhere)."""
    c, h, w = shape
    ch, y, x = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    v = ((ch * 7 + (y // 2) * 3 + (x // 3) * 5 + (ch * y * x) % 11) % 23) - 9
    return (np.maximum(v, 0) / 4.0).astype(np.float32)
