"""Shared pieces of the benchmarks: thread pinning, timing, test tensors, baselines."""

from __future__ import annotations

import json
import math
import os
import sys
import time


def pin_threads(n: int = 1) -> None:
    """One core for every library (call before importing numpy-heavy modules)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(n))


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def best_time(fn, repeats: int) -> tuple[float, object]:
    """Minimum wall time (s) of ``repeats`` calls, and the last result."""
    best, result = math.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def emit(doc: dict, output: str | None) -> None:
    text = json.dumps(doc, indent=2, sort_keys=False)
    if output:
        with open(output, "w") as f:
            f.write(text + "\n")
    print(text)


def synthetic_activations(shape, seed: int = 0):
    """Paper-shaped post-ReLU activations with realistic statistics: a spatially
    correlated Gaussian field per channel, per-channel gains and biases (some
    channels nearly dead), then ReLU.  About 60 % zeros (the exact fraction of
    each tensor is reported with its results).  Real activations are what the
    targets are judged on; these only give the paper's shapes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    c, h, w = shape
    f = rng.normal(size=shape)
    # correlate neighbours: two passes of a 3x3 box filter (correlation length ~2 px)
    for _ in range(2):
        p = np.pad(f, ((0, 0), (1, 1), (1, 1)), mode="reflect")
        f = sum(p[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0
    f /= f.std(axis=(1, 2), keepdims=True)
    gain = rng.lognormal(0.0, 0.5, size=(c, 1, 1))
    bias = rng.normal(-0.4, 0.6, size=(c, 1, 1))
    return np.maximum(gain * f + bias, 0).astype(np.float32)


def index_baselines(idx, levels: int) -> dict:
    """General-purpose compressors on the same indices, as uint8 and bit-packed."""
    import lzma
    import zlib

    import numpy as np

    out = {}
    nbits = max(1, math.ceil(math.log2(levels)))
    flat = np.ascontiguousarray(idx, dtype=np.uint8).reshape(-1)
    packed = np.packbits(((flat[:, None] >> np.arange(nbits - 1, -1, -1, dtype=np.uint8)) & 1).reshape(-1)).tobytes()
    raw = flat.tobytes()
    comps = {"zlib-9": lambda b: zlib.compress(b, 9), "lzma-9e": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)}
    try:
        import zstandard

        z = zstandard.ZstdCompressor(level=19)
        comps["zstd-19"] = z.compress
    except ImportError:  # pragma: no cover - eval extra missing
        pass
    n = flat.size
    for name, fn in comps.items():
        out[f"{name}_uint8"] = 8 * len(fn(raw)) / n
        out[f"{name}_packed"] = 8 * len(fn(packed)) / n
    counts = np.bincount(flat, minlength=levels).astype(np.float64)
    p = counts[counts > 0] / n
    out["order0_entropy"] = float(-(p * np.log2(p)).sum())
    return out


def constriction_bits(bins, p0) -> float | None:
    """Size in bits when constriction's range coder codes the same bins with the
    same probabilities (the ideal-coder reference); None when not installed."""
    try:
        import constriction
    except ImportError:
        return None
    import numpy as np

    p1 = 1.0 - p0.astype(np.float64) / (1 << 15)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(bins.astype(np.int32), constriction.stream.model.Bernoulli(perfect=False), p1)
    return 32.0 * enc.get_compressed().size


def update_section(path: str, name: str, text: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in a markdown file."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    with open(path) as f:
        doc = f.read()
    if start not in doc or end not in doc:
        raise SystemExit(f"{path} has no {start} ... {end} section")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(f"{head}{start}\n{text}\n{end}{tail}")
