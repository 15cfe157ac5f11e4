"""Which neighbours should the ``spatial`` context model use?  The measurement
behind its design, re-runnable.

    python -m eval context-study [--output study.json]

For EfficientNet-Lite0 activations of each shipped photo (one tensor per
photo, as a stream would carry it) this computes the adaptive code length of
the truncated-unary bins under several candidate context rules, with the same
probability estimator as the codec (two-rate, 15-bit), and prints bits/element
per candidate and its ratio to the paper's one-context-per-bin model.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from eval.core.common import log
from eval.core.entry import Entry

ONE = 1 << 15
CANDIDATES = {
    # name: (rule id, description)
    "paper": (0, "one context per bin position"),
    "left+above": (1, "[L>k] + [A>k]: 3 classes per bin"),
    "left,above": (2, "2[L>k] + [A>k]: 4 classes per bin"),
    "4-neighbour count": (3, "[L>k]+[A>k]+[AL>k]+[AR>k]: 5 classes per bin"),
    "4-neighbour weighted (chosen)": (4, "2[L>k]+2[A>k]+[AL>k]+[AR>k]: 7 classes per bin"),
    "weighted + plane class": (5, "the chosen rule x 6 plane-activity classes sent per plane"),
    "left+above + cross-channel activity": (6, "[L>k]+[A>k] x 3 buckets of how many earlier planes were non-zero here"),
}
STATIC = {  # reference points, not coders: each tensor's empirical conditional entropies, known in advance
    "static H(S | L,A,AL,AR)": False,
    "static H(S | L,A,AL,AR, plane class)": True,
}


@numba.njit(cache=True, inline="always")
def adaptive_cost(ctx, bit, fast, slow):
    """The ideal cost (bits) of ``bit`` in context ``ctx`` under the codec's two-rate estimator, which it then
    updates (shared by the context studies)."""
    p = (fast[ctx] + slow[ctx]) >> 1
    cost = -math.log2(1 - p / ONE) if bit else -math.log2(p / ONE)
    if bit:
        fast[ctx] -= fast[ctx] >> 4
        slow[ctx] -= slow[ctx] >> 7
    else:
        fast[ctx] += (ONE - fast[ctx]) >> 4
        slow[ctx] += (ONE - slow[ctx]) >> 7
    return cost


@numba.njit(cache=True)
def _adaptive_bits(q, levels, rule, plane_class):
    planes, h, w = q.shape
    nctx = (levels - 1) * 64 + 64
    fast = np.full(nctx, ONE // 2, np.int64)
    slow = fast.copy()
    acc = np.zeros((h, w), np.int64)
    bits = 0.0

    if rule == 5:  # side information: the class of every plane, truncated unary with its own contexts
        for c in range(planes):
            prev = plane_class[c - 1] if c > 0 else 0
            for k in range(5):
                bit = 1 if plane_class[c] > k else 0
                bits += adaptive_cost((levels - 1) * 64 + 2 * k + (1 if prev > k else 0), bit, fast, slow)
                if bit == 0:
                    break
    for c in range(planes):
        if rule == 5 and plane_class[c] == 0:
            continue  # an all-zero plane costs only its class
        for y in range(h):
            for x in range(w):
                s = q[c, y, x]
                L = q[c, y, x - 1] if x > 0 else 0
                A = q[c, y - 1, x] if y > 0 else 0
                AL = q[c, y - 1, x - 1] if x > 0 and y > 0 else 0
                AR = q[c, y - 1, x + 1] if y > 0 and x < w - 1 else 0
                f = acc[y, x] * 16 // c if c > 0 else 0
                act = 0 if f < 2 else (1 if f < 5 else 2)
                for k in range(levels - 1):
                    bit = 1 if s > k else 0
                    if rule == 0:
                        cls = 0
                    elif rule == 1:
                        cls = (L > k) + (A > k)
                    elif rule == 2:
                        cls = 2 * (L > k) + (A > k)
                    elif rule == 3:
                        cls = (L > k) + (A > k) + (AL > k) + (AR > k)
                    elif rule == 4:
                        cls = 2 * (L > k) + 2 * (A > k) + (AL > k) + (AR > k)
                    elif rule == 5:
                        cls = (2 * (L > k) + 2 * (A > k) + (AL > k) + (AR > k)) * 6 + plane_class[c]
                    else:
                        cls = ((L > k) + (A > k)) * 3 + act
                    bits += adaptive_cost(k * 64 + cls, bit, fast, slow)
                    if bit == 0:
                        break
                if s > 0:
                    acc[y, x] += 1
    return bits


def _static_entropy(q, levels, with_class: bool) -> float:
    """Empirical conditional entropy (bits) of the indices given L, A, AL, AR (and the
    plane class): what a coder that knew the tensor's own statistics in advance, for
    free, would need.  Not a bound for adaptive coders on non-stationary data."""
    c, h, w = q.shape
    p = np.pad(q, ((0, 0), (1, 0), (1, 1)))
    ctx = (((p[:, 1:, :w] * levels + p[:, :h, 1:w + 1]) * levels + p[:, :h, :w]) * levels + p[:, :h, 2:w + 2])
    ctx = ctx.astype(np.int64)
    if with_class:
        ctx = ctx * 8 + _plane_classes(q, levels)[:, None, None]
    key = ctx.reshape(-1) * levels + q.reshape(-1)
    _, kc = np.unique(key, return_counts=True)
    _, cc = np.unique(ctx.reshape(-1), return_counts=True)
    return float(-(kc * np.log2(kc)).sum() + (cc * np.log2(cc)).sum())


def _plane_classes(q, levels):
    m = q.reshape(q.shape[0], -1).mean(1) / (levels - 1)
    c = np.searchsorted(np.array([0.02, 0.06, 0.15, 0.3]), m, side="right") + 1
    c[m == 0] = 0
    return c.astype(np.int64)


ENTRY = Entry("context-study", "study", section="context_study", threads=1,
              help="context models measured on real activations")


def add_arguments(p) -> None:
    p.add_argument("--splits", default="blocks.3.expand,blocks.5.expand,blocks.11.expand,blocks.11.depthwise")
    p.add_argument("--levels", default="2,4,8")


def run(args) -> dict:
    import splitcodec as sc

    from eval.core.tensors import real_activations

    splits = args.splits.split(",")
    log("computing EfficientNet-Lite0 activations ...")
    acts = real_activations(splits, quick=False)
    rows = []
    for split in splits:
        tensors = acts[split]
        for levels in [int(v) for v in args.levels.split(",")]:
            clip = sc.mse_optimal_clip(np.concatenate([t.reshape(-1) for _, t in tensors]), levels)
            q = sc.UniformQuantizer(0.0, clip, levels)
            row = {"split": split, "shape": list(tensors[0][1].shape), "levels": levels, "clip": [0.0, clip]}
            n = sum(t.size for _, t in tensors)
            for name, (rule, _) in CANDIDATES.items():
                bits = 0.0
                for _, t in tensors:
                    idx = q.quantize(t).astype(np.int64)
                    bits += _adaptive_bits(idx, levels, rule, _plane_classes(idx, levels))
                row[name] = bits / n
            for name, with_class in STATIC.items():
                row[name] = sum(_static_entropy(q.quantize(t).astype(np.int64), levels, with_class)
                                for _, t in tensors) / n
            row["ratios_to_paper"] = {k: row[k] / row["paper"] for k in [*CANDIDATES, *STATIC] if k != "paper"}
            log(split, levels, {k: round(v, 3) for k, v in row["ratios_to_paper"].items()})
            rows.append(row)
    doc = {"study": "context_study", "candidates": {k: v[1] for k, v in CANDIDATES.items()},
           "static_bounds": list(STATIC),
           "photos": len(next(iter(acts.values()))), "rows": rows}
    return doc


def markdown(doc: dict) -> str:
    names = [k for k in [*CANDIDATES, *STATIC] if k != "paper"]
    lines = [f"Adaptive code length relative to the `paper` model (one context per bin), EfficientNet-Lite0 "
             f"activations of {doc['photos']} shipped photos, one stream per photo, uniform quantizer with the "
             "MSE-optimal clip. Lower is better; generated by `python -m eval context-study --update-doc docs/codec.md`.",
             "", "| split (shape) | N | paper b/e | " + " | ".join(names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for r in doc["rows"]:
        lines.append(f"| {r['split']} {tuple(r['shape'])} | {r['levels']} | {r['paper']:.3f} | "
                     + " | ".join(f"{r['ratios_to_paper'][n]:.3f}" for n in names) + " |")
    lines += ["", "Candidates: " + "; ".join(f"**{k}**: {v}" for k, v in doc["candidates"].items()) + ". "
              "The two *static* columns are not coders: they are the empirical conditional entropy of each "
              "tensor given its neighbours' values (and plane class), as if its statistics were known in advance "
              "and free to describe — reference points, not bounds."]
    return "\n".join(lines)
