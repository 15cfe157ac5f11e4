"""General-purpose baselines on the codec's own indices: zlib, lzma, zstd (uint8 and bit-packed), the order-0
entropy, and constriction's range coder on the codec's exact bins and probabilities (the ideal-coder reference)."""

from __future__ import annotations

import math


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

    from splitcodec.entropy.engine import PROB_ONE

    p1 = 1.0 - p0.astype(np.float64) / PROB_ONE
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(bins.astype(np.int32), constriction.stream.model.Bernoulli(perfect=False), p1)
    return 32.0 * enc.get_compressed().size
