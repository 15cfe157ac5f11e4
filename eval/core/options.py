"""Command-line pieces the studies share: list types, the dataset/model flags, opening the activation cache."""

from __future__ import annotations

import argparse

DATASETS_HELP = ("photos[:N] (shipped with scikit-image) | folder:PATH (any images, recursively; fidelity against the "
                 "float model needs no labels) | imagenet:ROOT[:LABELS] | coco:IMAGES:ANNOTATIONS")


def ints(text):
    return [int(v) for v in str(text).split(",") if v]


def floats(text):
    return [float(v) for v in str(text).split(",") if v]


def diffusions(text):
    from splitcodec.encoder_config import DIFFUSIONS

    out = [v for v in str(text).split(",") if v]
    if not out or any(v not in DIFFUSIONS for v in out):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(DIFFUSIONS)}")
    return out


def shard(text):
    if not text:
        return None
    k, _, n = text.partition("/")
    k, n = int(k), int(n)
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--shard must be k/n with 0 <= k < n, got {text}")
    return k, n


def add_model_arguments(sp, *, dataset="photos:96", split=True) -> None:
    sp.add_argument("--model", default="efficientnet_lite0")
    if split:
        sp.add_argument("--split", default="paper")
    sp.add_argument("--weights", default="DEFAULT",
                    help="DEFAULT (the model's trained weights; the default), an enum name, a weights file, or "
                         "'random' (needs --allow-random-weights: fidelity on random weights measures nothing)")
    sp.add_argument("--allow-random-weights", action="store_true",
                    help="measure fidelity with --weights random anyway (every result records the weights)")
    sp.add_argument("--dataset", default=dataset, help=f"{DATASETS_HELP} (default {dataset})")
    sp.add_argument("--limit", type=int, help="use only the first N samples")
    sp.add_argument("--cache-dir", default=".cache/splitcodec-eval")


def add_dataset_arguments(sp, *, shardable=True, levels=None) -> None:
    """The flags of the studies that evaluate operating points on one split's cached activations; with
    ``levels`` (the default list) also ``--levels``, the quantizer level counts N to evaluate."""
    add_model_arguments(sp)
    if levels is not None:
        sp.add_argument("--levels", type=ints, default=list(levels),
                        help=f"quantizer level counts N, comma-separated (default {','.join(map(str, levels))})")
    sp.add_argument("--calib", type=int, default=None,
                    help="samples (from the start) used to design/calibrate (default: a third of the samples, "
                         "at most 100)")
    sp.add_argument("--exclude-calib", action="store_true", help="evaluate only on the samples after --calib")
    sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    sp.add_argument("--max-detections", type=int,
                    help="detection studies: keep at most N detections per image (default: all above 0.005, "
                         "as Darknet's detector valid; pycocotools then keeps 100 per image and category)")
    if shardable:
        sp.add_argument("--shard", type=shard, help="k/n: evaluate only every n-th sample from k (merge later)")


def device_of(args) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device


def open_study_cache(args):
    """The activation cache the flags describe (detection settings applied)."""
    from eval.core.activations import open_cache

    cache = open_cache(args.model, args.split, args.weights, args.dataset, limit=args.limit,
                       allow_random=getattr(args, "allow_random_weights", False),
                       cache_dir=args.cache_dir, device=device_of(args))
    args.measured_on = cache.split.identity.to_dict()  # the runner records it in the result's envelope
    if getattr(args, "max_detections", None):
        from splitcodec.models.yolo import COCO_EVAL

        cache.detection_settings = dict(COCO_EVAL, max_dets=args.max_detections,
                                        pre_nms_topk=max(3000, 30 * args.max_detections))
    return cache
