"""Model registry and split points.

>>> from splitcodec import models
>>> "efficientnet_lite0" in models.list_models()
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .split import SplitModel, split_units

__all__ = ["list_models", "get_model", "list_splits", "split_model", "SplitModel", "imagenet_preprocess",
           "imagenet_categories"]


@dataclass(frozen=True)
class _Entry:
    builder: Callable
    input_size: int
    paper_split: str
    preprocess: Callable


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, entry: _Entry) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = entry


def imagenet_preprocess(size: int = 224, resize: int = 256):
    """Resize the shorter side (bicubic), centre-crop, ImageNet mean/std normalisation."""

    def preprocess(image):
        import numpy as np
        from PIL import Image
        from torchvision.transforms import functional as F

        if not isinstance(image, Image.Image):
            a = np.asarray(image)
            if a.ndim == 2:
                a = np.stack([a] * 3, axis=-1)
            image = Image.fromarray(a[..., :3].astype(np.uint8))
        image = image.convert("RGB")
        image = F.center_crop(F.resize(image, resize, interpolation=F.InterpolationMode.BICUBIC), size)
        return F.normalize(F.to_tensor(image), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])

    return preprocess


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names (from torchvision's weight metadata; no download)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _efficientnet_lite0(**kw):
    from .efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0(**kw)


register_model("efficientnet_lite0", _Entry(_efficientnet_lite0, 224, "blocks.11.expand", imagenet_preprocess()))


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def get_model(name: str, *, weights=None, **kw):
    """Build a registered model; ``weights``: None (random init), "DEFAULT" or a path."""
    return _entry(name).builder(weights=weights, **kw)


def list_splits(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """Every split point of ``name`` with its activation shape (C, H, W) at the model's input size."""
    import torch

    e = _entry(name)
    model = e.builder(weights=None)
    shapes = []
    x = torch.zeros(1, 3, e.input_size, e.input_size)
    with torch.no_grad():
        for unit_name, unit in list(model.units.items())[:-1]:
            x = unit(x)
            shapes.append((unit_name, tuple(x.shape[1:])))
    return shapes


def split_model(name: str, split: str = "paper", *, weights=None) -> SplitModel:
    """Cut ``name`` at ``split`` ("paper" = the model's reference split point)."""
    e = _entry(name)
    model = e.builder(weights=weights)
    return split_units(model, name, e.paper_split if split == "paper" else split, e.input_size, e.preprocess)
