"""Which conditioning on the previous frame pays?  The measurement behind the ``temporal`` context model.

For consecutive frames' quantized split tensors this computes the adaptive code length of the truncated-unary
bins under candidate context rules with the codec's own probability estimator (two-rate, 15-bit; the same
numbers as ``eval.studies.context_study``), with the probability state reset every frame or carried from the
frame before.  Part of ``python -m eval video`` (its ``context_candidates``).
"""

from __future__ import annotations

import numba
import numpy as np

from eval.studies.context_study import ONE, adaptive_cost

CANDIDATES = {  # name: (rule id, what it conditions on besides the spatial context of the current frame)
    "spatial (intra)": (0, "nothing of the previous frame"),
    "equality flag [R>k]": (1, "whether the reference index R is above the bin position: 2 classes"),
    "relation R<k / R=k / R>k": (2, "3 classes"),
    "R itself": (3, "the reference index: N classes"),
    "clamp(R-k+1, 0, 3) (chosen)": (4, "R<k, R=k, R=k+1, R>=k+2: 4 classes"),
    "chosen + changed neighbours": (5, "the chosen 4 classes x how many of L, A differ from their reference: 3"),
    "chosen + reference's right/below": (6, "the chosen 4 classes x [R_right>k] + [R_below>k]: 3"),
}


@numba.njit(cache=True)
def _frame_bits(q, ref, levels, rule, fast, slow):
    planes, h, w = q.shape
    bits = 0.0
    for p in range(planes):
        for y in range(h):
            for x in range(w):
                s = q[p, y, x]
                left = q[p, y, x - 1] if x > 0 else 0
                above = q[p, y - 1, x] if y > 0 else 0
                al = q[p, y - 1, x - 1] if x > 0 and y > 0 else 0
                ar = q[p, y - 1, x + 1] if y > 0 and x + 1 < w else 0
                r = np.int64(ref[p, y, x])
                changed = (1 if x > 0 and left != ref[p, y, x - 1] else 0) + (1 if y > 0 and above != ref[p, y - 1, x] else 0)
                rr = np.int64(ref[p, y, x + 1]) if x + 1 < w else 0
                rb = np.int64(ref[p, y + 1, x]) if y + 1 < h else 0
                for k in range(levels - 1):
                    sp = 7 * k + 2 * (left > k) + 2 * (above > k) + (al > k) + (ar > k)
                    rel4 = min(max(r - k + 1, 0), 3)
                    if rule == 0:
                        ctx = sp
                    elif rule == 1:
                        ctx = 2 * sp + (r > k)
                    elif rule == 2:
                        ctx = 3 * sp + (0 if r < k else (1 if r == k else 2))
                    elif rule == 3:
                        ctx = levels * sp + r
                    elif rule == 4:
                        ctx = 4 * sp + rel4
                    elif rule == 5:
                        ctx = 3 * (4 * sp + rel4) + changed
                    else:
                        ctx = 3 * (4 * sp + rel4) + (rr > k) + (rb > k)
                    bit = 1 if s > k else 0
                    bits += adaptive_cost(ctx, bit, fast, slow)
                    if bit == 0:
                        break
    return bits


def candidate_bytes(indices: np.ndarray, levels: int) -> dict:
    """{candidate: {"reset": bytes/frame, "carried": bytes/frame}} over frames 1.. of ``indices`` (frames ×
    planes × H × W uint8), payload only (every frame predicted from the one before)."""
    q = np.ascontiguousarray(indices.reshape((indices.shape[0], -1) + indices.shape[-2:]), dtype=np.uint8)
    n = 3 * 4 * 7 * max(levels, 2) * levels + 8
    out = {}
    for name, (rule, _) in CANDIDATES.items():
        res = {}
        for mode in ("reset", "carried"):
            fast = np.full(n, ONE // 2, np.int64)
            slow = fast.copy()
            total = 0.0
            for i in range(1, len(q)):
                if mode == "reset":
                    fast[:] = ONE // 2
                    slow[:] = ONE // 2
                total += _frame_bits(q[i], q[i - 1], levels, rule, fast, slow)
            res[mode] = total / 8 / max(len(q) - 1, 1)
        out[name] = res
    return out
