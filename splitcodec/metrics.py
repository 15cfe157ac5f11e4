"""Accuracy metrics: top-k for classifiers, COCO mAP for detectors, agreement with a reference."""

from __future__ import annotations

import contextlib
import io

import numpy as np

__all__ = ["topk_correct", "topk_accuracy", "agreement", "coco_map"]


def topk_correct(scores, labels, ks=(1, 5)) -> dict[int, np.ndarray]:
    """Per-sample booleans: is the label among the k highest scores?"""
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores)
    y = np.asarray(labels).reshape(-1)
    if s.ndim != 2 or s.shape[0] != y.size:
        raise ValueError(f"scores must be (N, classes) with N = len(labels); got {s.shape} and {y.size} labels")
    order = np.argsort(-s, axis=1, kind="stable")
    return {k: (order[:, :k] == y[:, None]).any(axis=1) for k in ks}


def topk_accuracy(scores, labels, ks=(1, 5)) -> dict[str, float]:
    """{"top1": ..., "top5": ...} as fractions."""
    return {f"top{k}": float(v.mean()) for k, v in topk_correct(scores, labels, ks).items()}


def agreement(predictions, reference) -> float:
    """Fraction of samples whose prediction equals the reference (e.g. the float model's top-1)."""
    p, r = np.asarray(predictions).reshape(-1), np.asarray(reference).reshape(-1)
    if p.size != r.size:
        raise ValueError("predictions and reference differ in length")
    return float((p == r).mean()) if p.size else float("nan")


def coco_map(coco_gt, results: list[dict], image_ids=None) -> dict[str, float]:
    """COCO box mAP with pycocotools' ``COCOeval``; returns mAP@[.5:.95], mAP@0.5 and mAP@0.75.

    ``coco_gt`` is a ``pycocotools.coco.COCO`` or the path of an annotation json;
    ``image_ids`` restricts the evaluation (default: the images in ``results``).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_gt if isinstance(coco_gt, COCO) else COCO(str(coco_gt))
    ids = sorted(set(image_ids) if image_ids is not None else {r["image_id"] for r in results})
    if not results:
        return {"mAP": 0.0, "mAP50": 0.0, "mAP75": 0.0, "images": len(ids)}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"mAP": float(ev.stats[0]), "mAP50": float(ev.stats[1]), "mAP75": float(ev.stats[2]), "images": len(ids)}
