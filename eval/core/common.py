"""Small shared pieces: progress logging, timing, paper-shaped test tensors, generated doc sections."""

from __future__ import annotations

import math
import sys
import time


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


def update_section(path: str, name: str, text: str, source: str | None = None) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in a markdown file; with
    ``source`` (the JSON the text was rendered from) a ``<!-- source: PATH -->`` line opens the section, so the
    docs test can re-render it from that file."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    with open(path) as f:
        doc = f.read()
    if start not in doc or end not in doc:
        raise ValueError(f"{path} has no {start} ... {end} section")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    origin = f"<!-- source: {source} -->\n" if source else ""
    with open(path, "w") as f:
        f.write(f"{head}{start}\n{origin}{text}\n{end}{tail}")
