"""The HEVC baseline: activations quantized to 8 bits, channels tiled into a
mosaic, coded as a monochrome picture with x265 (HEVC main intra, through
pillow-heif/libheif) and decoded with libde265.

This stands in for the paper's HM-16.20 + SCM-8.8 (HEVC screen-content coding
with transform skip), which is not available as a Python package; x265 has no
SCC tools, so it is a weaker baseline than the paper's.  The rate counts the
whole HEIF file (a few hundred bytes of container) plus the 8 bytes of
``min``/``max`` needed to undo the 8-bit quantization.
"""

from __future__ import annotations

import io
import math

import numpy as np


def tile(x: np.ndarray) -> np.ndarray:
    """(C, H, W) → a mosaic of ceil(sqrt(C)) columns (unused tiles are zero)."""
    c, h, w = x.shape
    cols = math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    out = np.zeros((rows * h, cols * w), dtype=x.dtype)
    for k in range(c):
        r, q = divmod(k, cols)
        out[r * h:(r + 1) * h, q * w:(q + 1) * w] = x[k]
    return out


def untile(m: np.ndarray, shape) -> np.ndarray:
    c, h, w = shape
    cols = m.shape[1] // w
    return np.stack([m[(k // cols) * h:(k // cols + 1) * h, (k % cols) * w:(k % cols + 1) * w] for k in range(c)])


def hevc_round_trip(x: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """Code one (C, H, W) activation tensor; returns the reconstruction and the byte count."""
    import pillow_heif
    from PIL import Image

    lo, hi = float(x.min()), float(x.max())
    scale = (hi - lo) / 255 if hi > lo else 1.0
    q8 = np.clip(np.floor((x - lo) / scale + 0.5), 0, 255).astype(np.uint8)
    mosaic = tile(q8)
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(mosaic, "L")).save(buf, quality=int(quality))
    data = buf.getvalue()
    back = np.asarray(pillow_heif.open_heif(io.BytesIO(data)).to_pillow().convert("L"))
    rec = untile(back, x.shape).astype(np.float32) * np.float32(scale) + np.float32(lo)
    return rec, len(data) + 8
