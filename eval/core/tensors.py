"""Real activations for the benchmarks and studies that need tensors, not a dataset: EfficientNet-Lite0 on the
photos shipped with scikit-image."""

from __future__ import annotations

PEER_SPLITS = ("blocks.2", "blocks.3.expand", "blocks.5.expand", "blocks.11.expand")  # the NNCodec comparison's


def real_activations(splits, quick: bool):
    """{split: [(photo name, activation (C,H,W) float32)]} from EfficientNet-Lite0."""
    import torch

    from splitcodec import models
    from splitcodec.datasets import shipped_photos

    torch.set_num_threads(1)
    photos = shipped_photos()[: 2 if quick else None]
    model = models.get_model("efficientnet_lite0", weights="DEFAULT")
    pre = models.imagenet_preprocess()
    x = torch.stack([pre(img) for _, img in photos])
    wanted, out = set(splits), {}
    with torch.no_grad():
        for name, unit in model.units.items():
            x = unit(x)
            if name in wanted:
                out[name] = [(n, a.numpy().copy()) for (n, _), a in zip(photos, x)]
            if len(out) == len(wanted):
                break
    return out
