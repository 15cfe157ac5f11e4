"""Would a quantizer step per channel pay for task fidelity?  A what-if that v1 streams cannot express.

    python -m eval channel-steps [--dataset photos:48] [--calib 16] [--quick] [--output JSON] [--update-doc PATH]

A v1 stream has one quantizer for the whole tensor.  A step per channel, finer where the network behind the
split is sensitive (``Δ_c = t · g_c``, ``g_c ≈ w_c ** -a`` with ``w`` from ``splitcodec.sensitivity``), would
need the factors in the stream: a format change.  Before making one this measures what it would buy on the
rate-accuracy study's split (EfficientNet-Lite0 ``blocks.11.expand``, shipped photo crops).  Each channel is
divided by its factor ``g_c`` (a power of √2, ``SCALE_BITS`` bits of side information per channel), coded as an
ordinary v1 stream with a fine uniform quantizer of step t and multiplied back: exactly what a decoder with
per-channel steps would rebuild, at the v1 payload's bits.  ``a = 0`` is today's format (one step) scanned
finely.  Every exponent is crossed with the encoder options (error feedback, RDO with channel weights) over a
grid of steps t; each family's lower convex hull of (bits, mean KL) — reachable by mixing two steps over
frames — gives the bits it needs for the KL of the plain uniform N = 8 and N = 16 points of the study.
Top-1 agreement (a step per crop) takes the cheapest scanned point that agrees as often.  One JSON document to
stdout.
"""

from __future__ import annotations

import time

import numpy as np

from eval.core.common import log
from eval.studies.rdo_variants import bits_at, hull
from eval.core.entry import Entry

SIM_LEVELS = 64  # fine enough that no element of a ReLU6 layer clips at the steps scanned
EXPONENTS = (0.0, 0.25, 0.35, 0.5)
SCALE_BITS = 4  # g_c = 2 ** (k / 2), k in [-8, 7]
ENCODERS = {  # name: (rdo_lambda, error_feedback, power of the channel weights in the RDO distortion, diffusion)
    "plain": (0.0, 0.0, None, "row"),
    "feedback 0.5": (0.0, 0.5, None, "row"),
    "feedback 1": (0.0, 1.0, None, "row"),
    "feedback 1 in the plane": (0.0, 1.0, None, "plane"),
    "feedback 0.5 + RDO": (0.03, 0.5, 0.5, "row"),
}
REFERENCES = (16, 8)


def step_factors(weights: np.ndarray, exponent: float) -> np.ndarray:
    """Per-channel step factors ``2 ** (k / 2)`` nearest to ``weights ** -exponent`` (geometric mean 1 before
    rounding), k clipped to the ``SCALE_BITS``-bit range."""
    lo = -(1 << (SCALE_BITS - 1))
    log_g = -exponent * np.log2(np.asarray(weights, dtype=np.float64))
    k = np.clip(np.rint(2.0 * (log_g - log_g.mean())), lo, -lo - 1)
    return np.exp2(k / 2.0)


def code_scaled(codec, x: np.ndarray, g: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Code one (C, H, W) tensor with per-channel steps ``g · Δ``: the v1 stream of ``x / g`` and what a decoder
    that multiplies channel c back by ``g[c]`` rebuilds."""
    gc = g.astype(np.float32)[:, None, None]
    data, idx = codec.encode(np.asarray(x, dtype=np.float32) / gc, return_indices=True)
    return data, codec.quantizer.dequantize(idx) * gc


def side_info_bpe(shape) -> float:
    """Bits per element the per-channel factors cost if every stream carries them."""
    c, h, w = shape
    return SCALE_BITS * c / (c * h * w)


def _fidelity(tail, xq: np.ndarray, float_logits: np.ndarray) -> dict:
    import torch

    from eval.core.evaluate import FIXED, fidelity_counts

    with torch.no_grad():
        out = tail(torch.from_numpy(np.ascontiguousarray(xq, dtype=np.float32))).numpy()
    f = fidelity_counts(out, float_logits)
    return {"kl": float(np.ldexp(f["kl"], -FIXED)) / len(xq), "fidelity_top1": f["agree1"] / len(xq)}


def measure(feats, logits, tail, weights, *, references, steps, exponents=EXPONENTS, encoders=ENCODERS) -> dict:
    """Reference rows (plain uniform N at ``references[N] = clip``) and one family of scanned points per
    (exponent, encoder)."""
    import splitcodec as sc

    n_el = feats.size

    def point(codec, g):
        bits, xq = 0, np.empty_like(feats)
        for i, x in enumerate(feats):
            data, xq[i] = code_scaled(codec, x, g)
            bits += 8 * len(data)
        row = {"bits_per_element": bits / n_el, "mse": float(((xq.astype(np.float64) - feats) ** 2).mean())}
        row.update(_fidelity(tail, xq, logits))
        return row

    ones = np.ones(feats.shape[1])
    refs = {}
    for n, clip in references.items():
        refs[str(n)] = dict(point(sc.FeatureCodec(sc.UniformQuantizer(0.0, clip, n)), ones), levels=n, clip=clip)
    families = []
    for a in exponents:
        g = step_factors(weights, a)
        for name, (lam, fb, power, diffusion) in encoders.items():
            w = None if power is None else weights ** power * g ** 2  # the task weight, in units of the tensor
            pts = []
            for t in steps:
                q = sc.UniformQuantizer(0.0, float(t) * (SIM_LEVELS - 1), SIM_LEVELS)
                codec = sc.FeatureCodec(q, rdo_lambda=lam, error_feedback=fb, channel_weights=w,
                                        error_diffusion=diffusion)
                pts.append(dict(point(codec, g), step=float(t)))
            families.append({"exponent": a, "encoder": name, "factors_range": [float(g.min()), float(g.max())],
                             "points": pts, "needs": _needs(pts, refs, feats.shape[1:], a > 0)})
            log(f"a={a} {name}: " + ", ".join(f"N={n} KL {v['kl_ratio']}" for n, v in families[-1]["needs"].items()))
    return {"references": refs, "families": families}


def _needs(pts, refs, shape, side: bool) -> dict:
    """For each reference: the family's bits for its KL (convex hull) and for its top-1 agreement, as ratios to
    its bits, with the per-channel factors' side information counted when the family needs them."""
    h = hull(pts, key="kl")
    extra = side_info_bpe(shape) if side else 0.0
    out = {}
    for n, r in refs.items():
        b = r["bits_per_element"]
        kl_bits = bits_at(h, r["kl"])
        agree = [p["bits_per_element"] for p in pts if p["fidelity_top1"] >= r["fidelity_top1"]]
        out[n] = {"kl_ratio": None if kl_bits is None else (kl_bits + extra) / b,
                  "top1_ratio": (min(agree) + extra) / b if agree else None}
    return out


def markdown(doc: dict) -> str:
    refs = doc["references"]
    encs = list(dict.fromkeys(f["encoder"] for f in doc["families"]))
    exps = list(dict.fromkeys(f["exponent"] for f in doc["families"]))
    by = {(f["exponent"], f["encoder"]): f for f in doc["families"]}
    shape = tuple(doc["shape"])
    lines = [f"Generated by `python -m eval channel-steps` ({doc['machine']}): EfficientNet-Lite0 `{doc['split']}` "
             f"{shape}, {doc['samples']} photo crops (weights fitted on the first {doc['calib']}); {len(doc['steps'])} "
             f"steps from {doc['steps'][0]:.3g} to {doc['steps'][-1]:.3g}. Reference: the plain uniform quantizer "
             + ", ".join(f"N = {n} ({r['bits_per_element']:.3f} b/e, KL {r['kl']:.4f}, top-1 {r['fidelity_top1']:.3f})"
                         for n, r in refs.items())
             + ". Cells: bits needed for the reference's KL (hull of the scanned steps) / for its top-1 agreement "
             f"(cheapest scanned point), as fractions of its bits; rows with a > 0 include {SCALE_BITS} bits of side "
             f"information per channel (+{side_info_bpe(shape):.3f} b/e). a = 0 is bitstream v1.", ""]
    head = [f"{e}, N = {n}" for e in encs for n in refs]
    lines += ["| step ∝ w^-a | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]

    def cell(v):
        return "—" if v is None else f"{v:.3f}"

    for a in exps:
        cells = [f"{cell(by[a, e]['needs'][n]['kl_ratio'])} / {cell(by[a, e]['needs'][n]['top1_ratio'])}"
                 for e in encs for n in refs]
        lines.append(f"| a = {a:g}{' (v1)' if a == 0 else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


ENTRY = Entry("channel-steps", "study", section="channel_steps", threads=1,
              help="what a quantizer step per channel would buy (a what-if)")


def add_arguments(p) -> None:
    p.add_argument("--dataset", default="photos:48")
    p.add_argument("--calib", type=int, default=16, help="samples the channel weights and clips are fitted on")
    p.add_argument("--steps", type=int, default=16, help="steps scanned per family")
    p.add_argument("--quick", action="store_true", help="8 crops, 2 exponents, 3 encoders, 4 steps (for tests)")
    p.add_argument("--cache-dir", default=".cache/splitcodec-eval")


def run(args) -> dict:
    import platform

    import torch

    import splitcodec as sc

    from eval.core.activations import open_cache
    from eval.core.envelope import cpu_name

    torch.manual_seed(0)
    dataset = "photos:8" if args.quick else args.dataset
    calib = min(args.calib, 4) if args.quick else args.calib
    cache = open_cache("efficientnet_lite0", "paper", "DEFAULT", dataset, cache_dir=args.cache_dir)
    idx = list(range(cache.n))
    cache.build(idx, progress=False)
    feats = cache.features(idx).astype(np.float32)
    logits = np.concatenate([d["logits"] for d in cache.iter_chunks(idx)])
    tail = cache.split.tail.eval()
    weights = sc.sensitivity.channel_sensitivity(tail, feats[:calib])
    clips = {n: float(sc.mse_optimal_clip(feats[:calib], n, 0.0)) for n in REFERENCES}
    # from well below the N = 16 step to above the N = 8 one
    lo, hi = 0.6 * clips[16] / 15, 2.0 * clips[8] / 7
    steps = np.geomspace(lo, hi, 4 if args.quick else args.steps)
    exponents = (0.0, 0.5) if args.quick else EXPONENTS
    quick = ("plain", "feedback 1 in the plane", "feedback 0.5 + RDO")
    encoders = {k: ENCODERS[k] for k in (quick if args.quick else ENCODERS)}
    t0 = time.time()
    doc = {"benchmark": "channel_steps", "machine": f"{cpu_name()} ({platform.machine()})", "quick": args.quick,
           "split": cache.split.split, "shape": list(feats.shape[1:]), "samples": len(feats), "calib": calib,
           "sim_levels": SIM_LEVELS, "scale_bits": SCALE_BITS, "steps": [float(t) for t in steps],
           "encoders": {k: dict(zip(("rdo_lambda", "error_feedback", "weights_power", "error_diffusion"), v))
                        for k, v in encoders.items()}}
    doc.update(measure(feats, logits, tail, weights, references=clips, steps=steps, exponents=exponents,
                       encoders=encoders))
    doc["seconds"] = time.time() - t0
    return doc
