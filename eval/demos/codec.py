"""Codec demo on real data: EfficientNet-Lite0 activations of a shipped photo,
encoded at N = 2, 4, 8 with both context models.

    python -m eval demo-codec [--photo chelsea] [--split blocks.11.expand]

Prints, for each setting, bits/element, compression against float32, MSE,
encode/decode speed, and whether the cloud half of the network still predicts
the same class as the uncompressed model.
"""

from __future__ import annotations

import time

from eval.core.common import best_time
from eval.core.entry import Entry


ENTRY = Entry("demo-codec", "demo", threads=1,
              help="the codec alone on real EfficientNet-Lite0 activations (N = 2, 4, 8)")


def add_arguments(p) -> None:
    p.add_argument("--photo", default="chelsea", help="a photo shipped with scikit-image (default: chelsea)")
    p.add_argument("--split", default="blocks.11.expand", help="EfficientNet-Lite0 split point")
    p.add_argument("--levels", default="2,4,8", help="comma-separated N values")


def run(args) -> int:
    import numpy as np
    import torch

    import splitcodec as sc
    from splitcodec import models
    from splitcodec.datasets import shipped_photos

    torch.set_num_threads(1)
    photo = dict(shipped_photos())[args.photo]
    t0 = time.perf_counter()
    split = models.split_model("efficientnet_lite0", split=args.split, weights="DEFAULT")
    x = split.preprocess(photo)[None]
    with torch.no_grad():
        feats = split.head(x)
        ref = split.tail(feats).softmax(-1)[0]
    a = feats[0].numpy()
    top = int(ref.argmax())
    names = models.imagenet_categories()
    print(f"EfficientNet-Lite0 on '{args.photo}', split {args.split}: activations {tuple(a.shape)} "
          f"({a.size} elements, {np.mean(a == 0):.0%} zeros), float model top-1 = {names[top]!r} "
          f"(class {top}, p = {float(ref[top]):.2f}); model ready in {time.perf_counter() - t0:.1f} s")
    print(f"{'N':>3} {'context':>8} {'clip':>12} {'bits/elem':>9} {'bytes':>7} {'vs f32':>7} {'MSE':>9} "
          f"{'enc ms':>7} {'dec ms':>7} {'top-1':>6}")
    for levels in [int(v) for v in args.levels.split(",")]:
        c_max = sc.mse_optimal_clip(a, levels)
        q = sc.UniformQuantizer(0.0, c_max, levels)
        for model in ("paper", "spatial"):
            codec = sc.FeatureCodec(q, model)
            codec.encode(a)  # JIT warm-up (cached on disk after the first run)
            te, data = best_time(lambda: codec.encode(a), 5)
            td, y = best_time(lambda: sc.decode(data), 5)
            with torch.no_grad():
                pred = int(split.tail(torch.from_numpy(y)[None]).argmax())
            mse = float(np.mean((y - a) ** 2))
            print(f"{levels:>3} {model:>8} {f'[0, {c_max:.3g}]':>12} {8 * len(data) / a.size:>9.3f} {len(data):>7} "
                  f"{a.size * 4 / len(data):>6.0f}x {mse:>9.5f} {1e3 * te:>7.2f} {1e3 * td:>7.2f} "
                  f"{'same' if pred == top else names[pred]:>6}")
    return 0
