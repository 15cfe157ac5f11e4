"""Evaluate operating points on cached activations.

An operating point is a quantizer (uniform, ECQ, Lloyd-Max) with a context
model, or the HEVC mosaic baseline.  Every sample is encoded to a real
bitstream (rate = its length, header included); the tail is fed the
dequantized tensor, which equals ``decode(encode(x))`` exactly (tested in the
codec suite), so the decoder is not re-run here.  Results are additive
accumulators, so shards merge exactly (``merge_rows``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

import splitcodec as sc


@dataclass
class OperatingPoint:
    method: str  # uniform | ecq-conventional | ecq-modified | lloyd-max | hevc | float
    levels: int | None = None
    clip: tuple[float, float] | None = None
    encoder: sc.EncoderConfig = field(default_factory=sc.EncoderConfig)  # context model, RDO, feedback, weights
    lam: float | None = None
    quality: int | None = None  # hevc
    quantizer: object = None
    encode: bool = True  # False: accuracy and MSE only (clip sweeps)
    weights_power: float | None = None  # how the encoder's channel weights were made (for the record)

    @property
    def context(self) -> str:
        return self.encoder.context_model

    def codec(self) -> sc.FeatureCodec:
        return sc.FeatureCodec(self.quantizer, config=self.encoder)

    def with_encoder(self, **options) -> "OperatingPoint":
        """This point with encoder ``options`` changed (validated together, as ``EncoderConfig`` does)."""
        return replace(self, encoder=replace(self.encoder, **options))

    def describe(self) -> dict:
        d = {"method": self.method, "levels": self.levels, "clip": list(self.clip) if self.clip else None,
             "context_model": self.context if self.method not in ("hevc", "float") else None}
        if self.lam is not None:
            d["lambda"] = self.lam
        if self.quality is not None:
            d["quality"] = self.quality
        d.update({k: v for k, v in self.encoder.to_dict().items() if k not in ("context_model", "channel_weights")})
        if self.encoder.channel_weights is not None:
            d["channel_weights"] = "sensitivity" if self.weights_power is None else f"sensitivity^{self.weights_power:g}"
        if self.quantizer is not None and self.method != "uniform":
            d["reconstruction"] = [float(v) for v in self.quantizer.reconstruction]
        return d


def uniform_point(levels, clip, context="spatial", encode=True, **options) -> OperatingPoint:
    """The uniform quantizer on ``clip`` with the encoder ``options`` (EncoderConfig fields)."""
    return OperatingPoint("uniform", levels, tuple(clip), sc.EncoderConfig(context, **options),
                          quantizer=sc.UniformQuantizer(clip[0], clip[1], levels), encode=encode)


def designed_point(method: str, samples, levels: int, clip, lam: float = 0.0, context="spatial") -> OperatingPoint:
    if method == "lloyd-max":
        q = sc.lloyd_max(samples, levels, clip[0], clip[1])
    else:
        q = sc.design_ecq(samples, levels, lam, clip[0], clip[1], method=method.split("-", 1)[1])
    return OperatingPoint(method, levels, tuple(clip), sc.EncoderConfig(context), lam=lam, quantizer=q)


@dataclass
class Accumulator:
    n: int = 0
    labeled: int = 0
    top1: int = 0
    top5: int = 0
    agree1: int = 0
    agree5: int = 0
    kl: int = 0  # summed KL(float softmax || this softmax), in units of 2^-FIXED nats
    confident: int = 0  # samples whose float top-1 probability is >= CONFIDENT
    agree_confident: int = 0
    bits: float = 0.0
    elements: int = 0
    sq_err: int = 0  # summed squared error, in units of 2^-FIXED
    detections: list = field(default_factory=list)
    image_ids: list = field(default_factory=list)

    def add(self, other: "Accumulator") -> None:
        for k in ("n", "labeled", "top1", "top5", "agree1", "agree5", "kl", "confident", "agree_confident", "bits",
                  "elements", "sq_err"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.detections += other.detections
        self.image_ids += other.image_ids

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict) -> "Accumulator":
        return cls(**d)


CONFIDENT = 0.5  # agreement is also reported on the samples the float model gives p >= 0.5
FIXED = 40  # per-sample sums are rounded to multiples of 2^-40 and added as integers: shards merge exactly


def fixed_sum(per_sample: np.ndarray) -> int:
    """Exact, order-independent sum of per-sample values (each rounded to a multiple of 2^-FIXED)."""
    return sum(int(v) for v in np.rint(np.ldexp(np.asarray(per_sample, dtype=np.float64), FIXED)))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def fidelity_counts(logits: np.ndarray, float_logits: np.ndarray) -> dict:
    """Agreement with the float model's top-1 (top-1, top-5, on confident samples) and the summed KL
    divergence KL(float || decoded) of the softmax outputs: metrics that need no labels and, unlike top-1
    agreement on a few dozen samples, move smoothly with the distortion."""
    order = np.argsort(-logits, axis=1)[:, :5]
    ref = float_logits.argmax(1)
    lp, lq = _log_softmax(float_logits), _log_softmax(logits)
    p = np.exp(lp)
    conf = p.max(1) >= CONFIDENT
    return {"agree1": int((order[:, 0] == ref).sum()), "agree5": int((order == ref[:, None]).any(1).sum()),
            "kl": fixed_sum((p * (lp - lq)).sum(1)), "confident": int(conf.sum()),
            "agree_confident": int((order[conf, 0] == ref[conf]).sum())}


def _classify(acc: Accumulator, logits, float_logits, targets):
    for k, v in fidelity_counts(logits, float_logits).items():
        setattr(acc, k, getattr(acc, k) + v)
    order = np.argsort(-logits, axis=1)[:, :5]
    lab = targets >= 0
    acc.labeled += int(lab.sum())
    acc.top1 += int((order[lab, 0] == targets[lab]).sum())
    acc.top5 += int((order[lab] == targets[lab, None]).any(1).sum())


def _detect(acc: Accumulator, split, heads, sizes, image_ids, settings=None):
    import torch

    from splitcodec.models.yolo import COCO_EVAL, letterbox_geometry, postprocess, to_coco_results

    settings = settings or COCO_EVAL
    net = split.input_size
    geos = [letterbox_geometry(int(w), int(h), net) for w, h in sizes]
    layers = [split.model.layers[i] for i in split.model.yolo_layers]
    dets = postprocess([torch.as_tensor(h) for h in heads], layers, geos, **settings)  # COCO_EVAL: as `detector valid`
    for d, iid in zip(dets, image_ids):
        acc.detections += to_coco_results(d, int(iid))
        acc.image_ids.append(int(iid))


def evaluate(cache, points: list[OperatingPoint], indices=None, *, device: str = "cpu", progress: bool = True):
    """One accumulator per operating point, plus the float baseline first."""
    import torch

    from eval.baselines.hevc import hevc_round_trip

    cache.build(indices, progress=progress)
    split = cache.split
    tail = split.tail.to(device)
    accs = [Accumulator() for _ in range(len(points) + 1)]
    chunks = list(cache.iter_chunks(indices))
    it = chunks
    if progress:
        import sys

        from tqdm import tqdm

        it = tqdm(chunks, desc=f"evaluating {len(points)} operating points", unit="chunk", file=sys.stderr)
    for d in it:
        feats, targets, sizes = d["features"], d["targets"], d["sizes"]
        b = feats.shape[0]
        base = accs[0]
        base.n += b
        if cache.task == "detection":
            _detect(base, split, [d[f"head{k}"] for k in range(3)], sizes, targets, cache.detection_settings)
        else:
            _classify(base, d["logits"], d["logits"], targets)
        for p, acc in zip(points, accs[1:]):
            acc.n += b
            if p.method == "hevc":
                xq, nbytes = zip(*(hevc_round_trip(f, p.quality) for f in feats))
                xq = np.stack(xq)
                acc.bits += 8 * sum(nbytes)
            elif p.encoder.rdo:  # the reconstruction is what the encoder chose
                codec = p.codec()
                coded = [codec.encode(f, return_indices=True) for f in feats]
                acc.bits += sum(8 * len(data) for data, _ in coded)
                xq = np.stack([p.quantizer.dequantize(idx) for _, idx in coded])
            else:
                xq = p.quantizer(feats)
                if p.encode:
                    codec = p.codec()
                    acc.bits += sum(8 * len(codec.encode(f)) for f in feats)
            acc.elements += feats.size
            err = (xq.astype(np.float64) - feats) ** 2
            acc.sq_err += fixed_sum(err.reshape(len(err), -1).sum(1))
            with torch.no_grad():
                out = tail(torch.from_numpy(np.ascontiguousarray(xq)).to(device))
            if cache.task == "detection":
                _detect(acc, split, [h.cpu().numpy() for h in out], sizes, targets, cache.detection_settings)
            else:
                _classify(acc, out.cpu().numpy(), d["logits"], targets)
    return accs


def finalize(acc: Accumulator, cache_or_coco=None, task="classification") -> dict:
    """Metrics from an accumulator."""
    out = {"samples": acc.n}
    if acc.elements:
        out["bits_per_element"] = acc.bits / acc.elements if acc.bits else None
        out["mse"] = math.ldexp(acc.sq_err, -FIXED) / acc.elements
    if task == "detection":
        from splitcodec.metrics import coco_map

        m = coco_map(cache_or_coco, acc.detections, image_ids=acc.image_ids)
        out.update({"mAP50": m["mAP50"], "mAP": m["mAP"]})
    else:
        out["fidelity_top1"] = acc.agree1 / acc.n if acc.n else None
        out["fidelity_top5"] = acc.agree5 / acc.n if acc.n else None
        out["kl"] = math.ldexp(acc.kl, -FIXED) / acc.n if acc.n else None
        out["confident_samples"] = acc.confident
        out["fidelity_top1_confident"] = acc.agree_confident / acc.confident if acc.confident else None
        if acc.labeled:
            out["top1"] = acc.top1 / acc.labeled
            out["top5"] = acc.top5 / acc.labeled
    return out


def accuracy_key(row: dict) -> float:
    """The headline accuracy of a row: mAP@0.5, top-1, or fidelity (agreement) without labels."""
    for k in ("mAP50", "top1", "fidelity_top1"):
        if row.get(k) is not None:
            return row[k]
    return float("nan")
