"""Choose a model's default operating point (N, clip) by measurement: top-1
agreement with the float model on augmented shipped photos, and the rate.

    python -m eval operating-point [--model efficientnet_lite0] [--crops 96]
"""

from __future__ import annotations

from eval.core.common import log
from eval.core.entry import Entry


ENTRY = Entry("operating-point", "study", threads=2,
              help="the default operating point per model (N and clip by agreement)")


def add_arguments(p) -> None:
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--split", default="paper")
    p.add_argument("--crops", type=int, default=96)
    p.add_argument("--levels", default="2,3,4,6,8,12,16,24,32")
    p.add_argument("--calibration", type=int, default=32, help="crops used to choose the clip (scored on the others)")
    p.add_argument("--update-registry", action="store_true",
                   help="write the chosen point into splitcodec/models/operating_points.json (the model's default)")


def run(args) -> dict:
    import numpy as np
    import torch

    import splitcodec as sc
    from splitcodec import models
    from splitcodec.datasets import photo_crops

    s = models.split_model(args.model, args.split, weights="DEFAULT")
    crops = photo_crops(args.crops + args.calibration, seed=1)
    log(f"{len(crops)} crops through the head ...")
    with torch.no_grad():
        feats = torch.cat([s.features([im for _, im in crops[i:i + 16]]) for i in range(0, len(crops), 16)])
        calib, test = feats[: args.calibration], feats[args.calibration:]
        ref = s.tail(test).argmax(1)
        calib_ref = s.tail(calib).argmax(1)
    flat = calib.numpy().reshape(-1)

    def agreement(q, x, reference):
        with torch.no_grad():
            return float((s.tail(torch.from_numpy(q(x.numpy()))).argmax(1) == reference).float().mean())

    rows = []
    for levels in [int(v) for v in args.levels.split(",")]:
        # candidate clips: the MSE-optimal one and high quantiles of the positive activations
        cands = set(sc.clip.clip_candidates(flat, levels, 0.0))
        scored = sorted((agreement(sc.UniformQuantizer(0.0, c, levels), calib, calib_ref), -c, c) for c in cands)
        c_max = scored[-1][2]  # best calibration agreement; ties -> the smaller clip (finer steps)
        q = sc.UniformQuantizer(0.0, c_max, levels)
        codec = sc.FeatureCodec(q, "spatial")
        bits = [8 * len(codec.encode(f.numpy())) / f.numel() for f in test]
        rows.append({"levels": levels, "clip": [0.0, c_max], "agreement": agreement(q, test, ref),
                     "calibration_agreement": scored[-1][0], "bits_per_element": float(np.mean(bits)),
                     "candidates": sorted(cands)})
        log({k: rows[-1][k] for k in ("levels", "clip", "agreement", "bits_per_element")})
    ok = [r for r in rows if r["agreement"] >= 0.95]
    best = min(ok, key=lambda r: r["bits_per_element"]) if ok else max(rows, key=lambda r: r["agreement"])
    if args.update_registry:
        update_registry(args.model, s.split, best)
    return {"model": args.model, "split": s.split, "test_crops": args.crops, "calibration_crops": args.calibration,
            "rows": rows, "chosen": best, "rule": "clip chosen by agreement on the calibration crops; "
            "default = lowest rate with >= 95 % top-1 agreement on the held-out crops"}


def registry_entry(split: str, chosen: dict) -> dict:
    """The registry's record of a measured point (``splitcodec.models.default_operating_point`` reads it)."""
    return {"split": split, "levels": chosen["levels"], "clip": list(chosen["clip"]),
            "source": "python -m eval operating-point --update-registry (docs/results/operating_point.json)"}


def update_registry(model: str, split: str, chosen: dict) -> None:
    import json

    from splitcodec import models

    points = json.loads(models.OPERATING_POINTS.read_text())
    points[model] = registry_entry(split, chosen)
    models.OPERATING_POINTS.write_text(json.dumps(points, indent=1) + "\n")
    models._operating_points.cache_clear()
