"""The paper's studies, each a function from an activation cache and options to
one JSON-able document with a row per operating point."""

from __future__ import annotations

import dataclasses

import numpy as np

import splitcodec as sc

from .common import log
from .evaluate import (Accumulator, OperatingPoint, accuracy_key, designed_point, evaluate, finalize,
                       uniform_point)


# --- shared helpers -----------------------------------------------------------------------------

def sample_sets(cache, calib: int, shard=None, exclude_calib: bool = False):
    """(calibration indices, evaluation indices); shards split the evaluation set only."""
    calib_idx = list(range(min(calib, cache.n)))
    evaluate_idx = list(range(len(calib_idx) if exclude_calib else 0, cache.n))
    if not evaluate_idx:
        raise ValueError(f"no samples left to evaluate ({cache.n} samples, {calib} for calibration)")
    if shard:
        k, n = shard
        evaluate_idx = [i for j, i in enumerate(evaluate_idx) if j % n == k]
    return calib_idx, evaluate_idx


def parse_clips(text: str | None, levels: list[int], calib_feats: np.ndarray) -> dict[int, tuple[float, float]]:
    """--clip: 'auto' (MSE-optimal per N on the calibration set), 'C_MAX', 'C_MIN:C_MAX',
    or one 'C_MIN:C_MAX' per N, comma-separated in the order of --levels."""
    if text in (None, "", "auto"):
        return {n: (0.0, sc.mse_optimal_clip(calib_feats, n, 0.0)) for n in levels}
    pairs = sc.clip.parse_clip_list(text)
    if len(pairs) == 1:
        return {n: pairs[0] for n in levels}
    if len(pairs) != len(levels):
        raise ValueError(f"--clip gives {len(pairs)} ranges for {len(levels)} values of --levels")
    return dict(zip(levels, pairs))


def _rows(cache, points, accs, task, extra=None):
    coco = getattr(cache.items, "coco", None)
    base = {"method": "float", **finalize(accs[0], coco, task)}
    rows = [base]
    for p, a in zip(points, accs[1:]):
        rows.append({**p.describe(), **finalize(a, coco, task)})
    return rows


def _document(study, cache, points, accs, calib_idx, eval_idx, shard, extra=None):
    doc = {"study": study, "model": cache.split.name, "split": cache.split.split,
           "feature_shape": list(cache.split.feature_shape), "task": cache.task,
           "dataset": cache.dataset.identity(), "calibration_samples": len(calib_idx),
           "evaluated_samples": len(eval_idx), "rows": _rows(cache, points, accs, cache.task),
           "accumulators": [a.to_json() for a in accs], "points": [p.describe() for p in points]}
    if shard:
        doc["shard"] = list(shard)
    doc.update(extra or {})
    return doc


# --- the studies --------------------------------------------------------------------------------

def rate_accuracy(cache, *, levels, clip=None, contexts=("spatial",), quantizers=("uniform",), lam=None,
                  calib=100, shard=None, exclude_calib=False, device="cpu", grid=None, rdo_lambdas=(),
                  error_feedbacks=(), task_weights=None, diffusions=("row",)):
    """Tables 1-3: the float baseline and one row per operating point; with ``rdo_lambdas`` /
    ``error_feedbacks`` also every point encoded with each combination of those encoder settings (and,
    with ``task_weights`` = p, the RDO ones again with channel weights ``sensitivity ** p`` fitted on the
    calibration samples; the feedback ones with each of ``diffusions``), plus ``encoder_savings``: the bits
    each encoder family needs to reach each plain point's fidelity."""
    calib_idx, eval_idx = sample_sets(cache, calib, shard, exclude_calib)
    cache.build(calib_idx + eval_idx)
    calib_feats = cache.features(calib_idx)
    points: list[OperatingPoint] = []
    if grid:
        for g in grid:
            n = int(g["levels"])
            c = tuple(g.get("clip") or (0.0, sc.mse_optimal_clip(calib_feats, n)))
            method = g.get("method", "uniform")
            ctx = g.get("context_model", "spatial")
            points.append(uniform_point(n, c, ctx) if method == "uniform"
                          else designed_point(method, calib_feats, n, c, g.get("lambda", 0.0), ctx))
            points[-1].rdo_lambda = float(g.get("rdo_lambda", 0.0))
            points[-1].error_feedback = float(g.get("error_feedback", 0.0))
    else:
        clips = parse_clips(clip, levels, calib_feats)
        for n in levels:
            for method in quantizers:
                for ctx in contexts:
                    if method == "uniform":
                        points.append(uniform_point(n, clips[n], ctx))
                    else:
                        l = lam if lam is not None else _default_lambda(calib_feats, clips[n])
                        points.append(designed_point(method, calib_feats, n, clips[n], l, ctx))
        weights = None
        if task_weights is not None and any(r > 0 for r in rdo_lambdas):
            weights = sc.sensitivity.channel_sensitivity(cache.split.tail, calib_feats, power=task_weights,
                                                         task="classification" if cache.task != "detection" else "output")
        points += encoder_variants(points, rdo_lambdas, error_feedbacks, weights, task_weights, diffusions)
    accs = evaluate(cache, points, eval_idx, device=device)
    doc = _document("rate-accuracy", cache, points, accs, calib_idx, eval_idx, shard)
    if len(doc["rows"]) > 1 and any(encoder_family(r) != "plain" for r in doc["rows"][1:]):
        doc["encoder_savings"] = encoder_savings(doc["rows"][1:], cache.task)
    return doc


def encoder_variants(points, rdo_lambdas=(), error_feedbacks=(), weights=None, power=None,
                     diffusions=("row",)) -> list[OperatingPoint]:
    """Each point again with every combination of RDO λ and error feedback (0 included, the plain
    point itself excluded; each feedback with every error diffusion of ``diffusions``), and the RDO ones
    once more with channel ``weights``."""
    if any(not r >= 0 for r in rdo_lambdas):
        raise ValueError(f"RDO λ must be >= 0, got {list(rdo_lambdas)}")
    if any(not 0 <= f <= 1 for f in error_feedbacks):
        raise ValueError(f"error-feedback gains must be in [0, 1], got {list(error_feedbacks)}")
    if not diffusions or any(d not in sc.entropy.coder.DIFFUSIONS for d in diffusions):
        raise ValueError(f"error diffusions must be among {sc.entropy.coder.DIFFUSIONS}, got {list(diffusions)}")
    diffusions = list(dict.fromkeys(diffusions))
    out = []
    for p in points:
        for r in sorted({0.0, *map(float, rdo_lambdas)}):
            for f in sorted({0.0, *map(float, error_feedbacks)}):
                if r == 0 and f == 0:
                    continue
                for d in (diffusions if f > 0 else ["row"]):
                    out.append(dataclasses.replace(p, rdo_lambda=r, error_feedback=f, error_diffusion=d))
                    if r > 0 and weights is not None:
                        out.append(dataclasses.replace(out[-1], channel_weights=weights, weights_power=power))
    return out


ENCODER_FAMILIES = ("plain", "rdo", "rdo+feedback", "rdo+feedback+weights")


def encoder_family(row) -> str:
    """The encoder family of a row: the most general setting it uses."""
    if row.get("channel_weights"):
        return "rdo+feedback+weights"
    if row.get("error_feedback"):
        return "rdo+feedback"
    return "rdo" if row.get("rdo_lambda") else "plain"


def _family_rows(rows, family):
    """Rows a family may use: its own and those of every family before it (a family includes its settings = 0)."""
    allowed = ENCODER_FAMILIES[: ENCODER_FAMILIES.index(family) + 1]
    return [r for r in rows if encoder_family(r) in allowed and r.get("bits_per_element")]


def encoder_savings(rows, task="classification") -> list[dict]:
    """For every plain point: the fewest bits each encoder family needs for at least its fidelity (at most its KL
    divergence for classification), as a ratio to the plain point's bits."""
    metrics = [("mAP50", True)] if task == "detection" else [("kl", False), ("fidelity_top1", True), ("fidelity_top5", True)]
    out = []
    for p in rows:
        if encoder_family(p) != "plain" or not p.get("bits_per_element"):
            continue
        entry = {"method": p["method"], "levels": p["levels"], "clip": p.get("clip"), "bits_per_element": p["bits_per_element"]}
        for key, higher in metrics:
            if p.get(key) is None:
                continue
            m = {"plain_value": p[key]}
            for fam in ENCODER_FAMILIES[1:]:
                ok = [r for r in _family_rows(rows, fam) if r.get(key) is not None
                      and (r[key] >= p[key] if higher else r[key] <= p[key])]
                best = min(ok, key=lambda r: r["bits_per_element"])
                m[fam] = {"bits_per_element": best["bits_per_element"],
                          "ratio": best["bits_per_element"] / p["bits_per_element"],
                          "point": {k: best.get(k) for k in ("levels", "rdo_lambda", "error_feedback", "error_diffusion",
                                                             "channel_weights")}}
            entry[key] = m
        out.append(entry)
    return out


def _default_lambda(samples, clip):
    return float(sc.quantization.default_lambdas(samples, *clip, count=8)[3])


def clip_sweep(cache, *, levels, cmax=None, points_per_level=16, calib=100, shard=None, exclude_calib=False,
               device="cpu"):
    """Fig. 2: accuracy and MSQE against c_max for several N (c_min = 0)."""
    calib_idx, eval_idx = sample_sets(cache, calib, shard, exclude_calib)
    cache.build(calib_idx + eval_idx)
    feats = cache.features(calib_idx)
    if cmax:
        lo, hi, k = cmax.split(":")
        grid = np.linspace(float(lo), float(hi), int(k))
    else:
        pos = feats[feats > 0]
        grid = np.quantile(pos, np.linspace(0.5, 1.0, points_per_level)) if pos.size else np.linspace(0.1, 1, 4)
    grid = sorted({float(np.float16(c)) for c in grid if c > 0})
    points = [uniform_point(n, (0.0, c), encode=False) for n in levels for c in grid]
    accs = evaluate(cache, points, eval_idx, device=device)
    doc = _document("clip-sweep", cache, points, accs, calib_idx, eval_idx, shard)
    doc["optima"] = clip_optima(doc["rows"][1:])
    return doc


def clip_optima(rows) -> list[dict]:
    out = []
    for n in sorted({r["levels"] for r in rows}):
        rs = [r for r in rows if r["levels"] == n]
        best_mse = min(rs, key=lambda r: r["mse"])
        best_acc = max(rs, key=lambda r: (accuracy_key(r), -r["mse"]))
        out.append({"levels": n, "mse_optimal_cmax": best_mse["clip"][1], "accuracy_optimal_cmax": best_acc["clip"][1],
                    "accuracy_at_mse_optimal": accuracy_key(best_mse), "best_accuracy": accuracy_key(best_acc)})
    return out


def ecq(cache, *, levels=(2, 3, 4), lams=None, clip=None, context="spatial", calib=100, shard=None,
        exclude_calib=False, hevc_qualities=(), device="cpu", rdo_lambdas=()):
    """Figs. 4-6: accuracy vs bits/element for uniform, conventional ECQ (Alg. 1) and
    modified ECQ (Alg. 2), quantizers designed on the calibration samples; with ``rdo_lambdas``
    every one of them again encoded with each RDO λ (the exact adaptive rate beside ECQ's static one)."""
    calib_idx, eval_idx = sample_sets(cache, calib, shard, exclude_calib)
    cache.build(calib_idx + eval_idx)
    feats = cache.features(calib_idx)
    clips = parse_clips(clip, list(levels), feats)
    points = []
    for n in levels:
        points.append(uniform_point(n, clips[n], context))
        grid = lams if lams is not None else sc.quantization.default_lambdas(feats, *clips[n], count=6)
        for lam in grid:
            for method in ("ecq-conventional", "ecq-modified"):
                points.append(designed_point(method, feats, n, clips[n], float(lam), context))
    points += encoder_variants(points, rdo_lambdas)
    points += [OperatingPoint("hevc", quality=int(q)) for q in hevc_qualities]
    accs = evaluate(cache, points, eval_idx, device=device)
    return _document("ecq", cache, points, accs, calib_idx, eval_idx, shard)


def hevc(cache, *, qualities=(10, 30, 50, 70, 90), calib=0, shard=None, device="cpu"):
    """The HEVC baseline (x265 main intra on an 8-bit channel mosaic) at several qualities."""
    calib_idx, eval_idx = sample_sets(cache, calib, shard)
    points = [OperatingPoint("hevc", quality=int(q)) for q in qualities]
    accs = evaluate(cache, points, eval_idx, device=device)
    return _document("hevc", cache, points, accs, calib_idx, eval_idx, shard,
                     {"note": "HEVC main intra via x265/libheif, not the paper's HM-16.20 + SCM (screen content)"})


def _score_on(cache, points, idx, device):
    accs = evaluate(cache, points, idx, device=device, progress=False)
    task = cache.task
    coco = getattr(cache.items, "coco", None)
    return [finalize(a, coco, task) for a in accs]


def calibrate(cache, *, levels, method="mse", context="spatial", calib=100, device="cpu", rdo_lambdas=()):
    """Choose the clip range for N levels on the calibration samples (MSE-optimal,
    or the candidate with the best accuracy — with ``rdo_lambdas``, the RDO λ too), and
    describe the quantizer."""
    if rdo_lambdas and method != "accuracy":
        raise ValueError("--rdo-lambda is searched with --method accuracy (an MSE-optimal clip has no λ to choose)")
    calib_idx = list(range(min(calib, cache.n)))
    cache.build(calib_idx)
    feats = cache.features(calib_idx)
    lo = sc.clip.low_clip(feats)
    if method == "mse":
        clip = (lo, sc.mse_optimal_clip(feats, levels, lo))
        candidates = [{"clip": list(clip)}]
    elif method == "accuracy":
        cands = [(c, float(r)) for c in sc.clip.clip_candidates(feats, levels, lo) for r in sorted({0.0, *rdo_lambdas})]
        pts = [dataclasses.replace(uniform_point(levels, (lo, c), context), rdo_lambda=r) for c, r in cands]
        scores = _score_on(cache, pts, calib_idx, device)[1:]
        candidates = [{"clip": [lo, c], "rdo_lambda": r, **s} for (c, r), s in zip(cands, scores)]
        # the most faithful; among equals the smaller clip, then the larger λ (fewer bits)
        best = max(candidates, key=lambda r: (accuracy_key(r), -r["clip"][1], r["rdo_lambda"]))
        clip, rdo_lambda = tuple(best["clip"]), best["rdo_lambda"]
    else:
        raise ValueError("method must be 'mse' or 'accuracy'")
    if method == "mse":
        rdo_lambda = 0.0
    p = dataclasses.replace(uniform_point(levels, clip, context), rdo_lambda=rdo_lambda)
    metrics = _score_on(cache, [p], calib_idx, device)
    return {"study": "calibrate", "model": cache.split.name, "split": cache.split.split, "levels": levels,
            "method": method, "clip": list(clip), "rdo_lambda": rdo_lambda, "context_model": context,
            "quantizer": p.quantizer,
            "calibration_samples": len(calib_idx), "dataset": cache.dataset.identity(),
            "float": metrics[0], "calibration_metrics": metrics[1], "candidates": candidates}


def target_rate(cache, *, budget, levels=(2, 3, 4, 5, 6, 8, 12, 16), with_ecq=False, context="spatial",
                calib=100, exclude_calib=False, device="cpu", rdo_lambdas=(), error_feedbacks=(), diffusions=("row",)):
    """Best accuracy on the calibration samples within a bits/element budget (N, clip and, with
    ``rdo_lambdas`` / ``error_feedbacks``, the RDO λ and the error-feedback gain searched together; ties
    go to the smaller KL divergence); the chosen point is then measured on the evaluation samples."""
    calib_idx, eval_idx = sample_sets(cache, calib, None, exclude_calib)
    cache.build(calib_idx + eval_idx)
    feats = cache.features(calib_idx)
    points = []
    for n in levels:
        for c in sc.clip.clip_candidates(feats, n):
            points.append(uniform_point(n, (0.0, c), context))
            if with_ecq:
                for lam in sc.quantization.default_lambdas(feats, 0.0, c, count=4):
                    points.append(designed_point("ecq-modified", feats, n, (0.0, c), float(lam), context))
    points += encoder_variants(points, rdo_lambdas, error_feedbacks, diffusions=diffusions)
    scores = _score_on(cache, points, calib_idx, device)
    rows = [{**p.describe(), **s} for p, s in zip(points, scores[1:])]
    within = [(r, p) for r, p in zip(rows, points) if r["bits_per_element"] <= budget]
    if not within:
        cheapest = min(rows, key=lambda r: r["bits_per_element"])
        raise ValueError(f"no candidate fits {budget} bits/element; the cheapest needs "
                         f"{cheapest['bits_per_element']:.3f} (N = {cheapest['levels']})")
    chosen_row, chosen = max(within, key=lambda rp: _target_key(rp[0]))
    achieved = _score_on(cache, [chosen], eval_idx, device)
    log(f"chosen N={chosen.levels} clip={chosen.clip} RDO λ={chosen.rdo_lambda:g} "
        f"error feedback={chosen.error_feedback:g} ({chosen.error_diffusion}): {achieved[1]}")
    return {"study": "target-rate", "model": cache.split.name, "split": cache.split.split, "budget": budget,
            "chosen": chosen_row, "rdo_lambda": chosen.rdo_lambda, "error_feedback": chosen.error_feedback,
            "error_diffusion": chosen.error_diffusion,
            "quantizer": chosen.quantizer, "achieved": achieved[1], "float": achieved[0],
            "evaluated_samples": len(eval_idx), "calibration_samples": len(calib_idx), "candidates": rows}


def _target_key(row: dict) -> tuple:
    """Order of candidates within a budget: accuracy, then (classifiers) the smaller KL divergence — top-1 on a
    few calibration samples ties often, KL moves with every error — then fewer bits."""
    kl = row.get("kl")
    return accuracy_key(row), -kl if kl is not None else 0.0, -row["bits_per_element"]


def merge_documents(docs: list[dict], coco=None) -> dict:
    """Combine shard outputs of one study into one result (accumulators are added)."""
    if not docs:
        raise ValueError("nothing to merge")
    first = docs[0]
    for d in docs[1:]:
        if d["study"] != first["study"] or d["points"] != first["points"]:
            raise ValueError("shards come from different studies or operating points")
    shards = sorted(tuple(d.get("shard", (0, 1))) for d in docs)
    n = shards[0][1]
    if [s[0] for s in shards] != list(range(n)) or any(s[1] != n for s in shards):
        raise ValueError(f"incomplete or inconsistent shards: {shards}")
    accs = [Accumulator.from_json(a) for a in first["accumulators"]]
    for d in docs[1:]:
        for a, b in zip(accs, d["accumulators"]):
            a.add(Accumulator.from_json(b))
    out = {k: v for k, v in first.items() if k not in ("shard", "accumulators", "rows")}
    out["evaluated_samples"] = sum(d["evaluated_samples"] for d in docs)
    out["merged_shards"] = n
    task = first["task"]
    out["rows"] = [{"method": "float", **finalize(accs[0], coco, task)}] + [
        {**p, **finalize(a, coco, task)} for p, a in zip(first["points"], accs[1:])]
    out["accumulators"] = [a.to_json() for a in accs]
    if first["study"] == "clip-sweep":
        out["optima"] = clip_optima(out["rows"][1:])
    if "encoder_savings" in first:
        out["encoder_savings"] = encoder_savings(out["rows"][1:], task)
    return out
