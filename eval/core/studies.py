"""What the studies share: calibration/evaluation sample sets, the result document with a row per operating
point, encoder variants and families, shard merging (the studies themselves are in eval/studies/)."""

from __future__ import annotations

import dataclasses

import numpy as np

import splitcodec as sc

from eval.core.evaluate import Accumulator, OperatingPoint, accuracy_key, evaluate, finalize


# --- shared helpers -----------------------------------------------------------------------------

DEFAULT_CALIB = 100  # calibration samples at most, by default


def calibration_count(n: int, calib: int | None, *, held_out: bool, cap: int = DEFAULT_CALIB) -> int:
    """How many samples (from the start) calibrate: ``calib`` as given, else a third of the ``n`` samples
    (at least 1, at most ``cap``).  With ``held_out`` (calibration samples are not evaluated) at least one
    sample must be left; a ``calib`` that leaves none is a usage error naming --calib."""
    if calib is None:
        calib = min(cap, max(1, n // 3))
        if held_out and n > 1:
            calib = min(calib, n - 1)
    if calib < (1 if held_out else 0):
        raise ValueError(f"--calib must be >= 1, got {calib}")
    if held_out and calib >= n:
        raise ValueError(f"no samples left to evaluate ({n} samples, {calib} for calibration): give a smaller "
                         f"--calib (at most {n - 1}), or more samples")
    return calib


def sample_sets(cache, calib: int | None, shard=None, exclude_calib: bool = False, cap: int = DEFAULT_CALIB):
    """(calibration indices, evaluation indices); shards split the evaluation set only.  ``calib`` None: a third
    of the samples (``calibration_count``)."""
    calib = calibration_count(cache.n, calib, held_out=exclude_calib, cap=cap)
    calib_idx = list(range(min(calib, cache.n)))
    evaluate_idx = list(range(len(calib_idx) if exclude_calib else 0, cache.n))
    if not evaluate_idx:
        raise ValueError(f"no samples to evaluate ({cache.n} samples): check --dataset and --limit")
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


def rows_of(cache, points, accs, task, extra=None):
    coco = getattr(cache.items, "coco", None)
    base = {"method": "float", **finalize(accs[0], coco, task)}
    rows = [base]
    for p, a in zip(points, accs[1:]):
        rows.append({**p.describe(), **finalize(a, coco, task)})
    return rows


def document(study, cache, points, accs, calib_idx, eval_idx, shard, extra=None):
    doc = {"study": study, "model": cache.split.name, "split": cache.split.split,
           "feature_shape": list(cache.split.feature_shape), "task": cache.task,
           "dataset": cache.dataset.identity(), "calibration_samples": len(calib_idx),
           "evaluated_samples": len(eval_idx), "rows": rows_of(cache, points, accs, cache.task),
           "accumulators": [a.to_json() for a in accs], "points": [p.describe() for p in points]}
    if shard:
        doc["shard"] = list(shard)
    doc.update(extra or {})
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
                    out.append(p.with_encoder(rdo_lambda=r, error_feedback=f, error_diffusion=d))
                    if r > 0 and weights is not None:
                        out.append(dataclasses.replace(out[-1].with_encoder(channel_weights=weights), weights_power=power))
    return out


ENCODER_FAMILIES = ("plain", "rdo", "rdo+feedback", "rdo+feedback+weights")


def encoder_family(row) -> str:
    """The encoder family of a row: the most general setting it uses."""
    if row.get("channel_weights"):
        return "rdo+feedback+weights"
    if row.get("error_feedback"):
        return "rdo+feedback"
    return "rdo" if row.get("rdo_lambda") else "plain"


def family_rows(rows, family):
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
                ok = [r for r in family_rows(rows, fam) if r.get(key) is not None
                      and (r[key] >= p[key] if higher else r[key] <= p[key])]
                best = min(ok, key=lambda r: r["bits_per_element"])
                m[fam] = {"bits_per_element": best["bits_per_element"],
                          "ratio": best["bits_per_element"] / p["bits_per_element"],
                          "point": {k: best.get(k) for k in ("levels", "rdo_lambda", "error_feedback", "error_diffusion",
                                                             "channel_weights")}}
            entry[key] = m
        out.append(entry)
    return out


def default_lambda(samples, clip):
    return float(sc.quantization.default_lambdas(samples, *clip, count=8)[3])


def clip_optima(rows) -> list[dict]:
    out = []
    for n in sorted({r["levels"] for r in rows}):
        rs = [r for r in rows if r["levels"] == n]
        best_mse = min(rs, key=lambda r: r["mse"])
        best_acc = max(rs, key=lambda r: (accuracy_key(r), -r["mse"]))
        out.append({"levels": n, "mse_optimal_cmax": best_mse["clip"][1], "accuracy_optimal_cmax": best_acc["clip"][1],
                    "accuracy_at_mse_optimal": accuracy_key(best_mse), "best_accuracy": accuracy_key(best_acc)})
    return out


def score_on(cache, points, idx, device):
    accs = evaluate(cache, points, idx, device=device, progress=False)
    task = cache.task
    coco = getattr(cache.items, "coco", None)
    return [finalize(a, coco, task) for a in accs]


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


def save_quantizer_file(path, doc: dict, cache, study: str) -> str:
    """Write a study's chosen quantizer and encoder configuration as a quantizer file (default name
    ``quantizer-MODEL-N.json``); returns its path."""
    from splitcodec.quantizer_file import save_quantizer

    path = path or f"quantizer-{doc['model']}-{doc['quantizer'].levels}.json"
    save_quantizer(path, doc["quantizer"], doc["encoder"], identity=cache.split.identity, study=study,
                   fitted_on={"dataset": cache.dataset.identity(), "samples": doc["calibration_samples"]},
                   metrics=doc.get("calibration_metrics") or doc.get("achieved"))
    return path
