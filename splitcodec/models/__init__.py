"""Model registry and split points.

The paper's networks — YOLOv3 (Darknet), VGG-16 and ResNet-50 (torchvision, and
their Darknet versions) — and EfficientNet-Lite0, the one real ImageNet model
that installs offline.  Every model is a flat sequence of units; a split point
is a unit boundary, so ``tail(head(x))`` is exactly ``model(x)``.

>>> from splitcodec import models
>>> "efficientnet_lite0" in models.list_models()
True
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..preprocessing import preprocess as _preprocess

__all__ = ["list_models", "get_model", "list_splits", "split_model", "SplitModel", "imagenet_preprocess",
           "darknet_preprocess", "imagenet_categories", "register_model", "ModelEntry", "paper_split",
           "default_operating_point", "OPERATING_POINTS", "weights_name"]


@dataclass(frozen=True)
class ModelEntry:
    builder: Callable  # (weights=..., **kw) -> module with unit_names() and run_units()
    input_size: int
    paper_split: str
    preprocess_spec: dict = field(default_factory=dict)  # see splitcodec.preprocessing
    task: str = "classification"  # or "detection"
    description: str = ""

    @property
    def preprocess(self) -> Callable:
        return _torch_preprocess(self.preprocess_spec)


def __getattr__(name):  # SplitModel without importing torch for the registry alone
    if name == "SplitModel":
        from .split import SplitModel

        return SplitModel
    raise AttributeError(name)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, entry: ModelEntry) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = entry


def _torch_preprocess(spec: dict) -> Callable:
    """image -> (3, S, S) torch tensor, computed by the torch-free ``splitcodec.preprocessing``."""

    def preprocess(image):
        import torch

        return torch.from_numpy(_preprocess(image, spec))

    preprocess.spec = spec
    return preprocess


def imagenet_preprocess(size: int = 224, resize: int = 256):
    """Resize the shorter side (bicubic), centre-crop, ImageNet mean/std normalisation."""
    return _torch_preprocess({"kind": "imagenet", "size": size, "resize": resize})


def darknet_preprocess(size: int):
    """Darknet classifiers: shorter side to ``size`` (bilinear), centre crop, RGB in [0, 1]."""
    return _torch_preprocess({"kind": "darknet", "size": size})


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names (from torchvision's weight metadata; no download)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _efficientnet_lite0(**kw):
    from .efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0(**kw)


def _torchvision(name):
    def build(**kw):
        from . import torchvision_models

        return getattr(torchvision_models, name)(**kw)

    return build


def _darknet(cfg: str):
    def build(*, weights=None, progress: bool = True):
        from .darknet import CFG_DIR, DarknetNet, load_darknet_weights

        net = DarknetNet(CFG_DIR / cfg).eval()
        if weights == "DEFAULT":
            raise FileNotFoundError(f"no Darknet weights ship with splitcodec for {cfg}; pass weights=PATH to a .weights file")
        if weights is not None:
            load_darknet_weights(net, weights, progress=progress)
        return net

    return build


register_model("yolov3", ModelEntry(_darknet("yolov3.cfg"), 416, "layer12", {"kind": "letterbox", "size": 416},
                                    "detection", "YOLOv3 (Darknet cfg + .weights), COCO 80 classes, letterboxed 416 input"))
register_model("vgg16", ModelEntry(_torchvision("vgg16"), 224, "features.9", {"kind": "imagenet", "size": 224, "resize": 256},
                                   description="torchvision VGG-16; features.9 = Darknet layer 6 (128x56x56)"))
register_model("resnet50", ModelEntry(_torchvision("resnet50"), 256, "layer2.1", {"kind": "imagenet", "size": 256, "resize": 293},
                                      description="torchvision ResNet-50 at 256 input; layer2.1 = Darknet layer 21 (512x32x32)"))
register_model("vgg16_darknet", ModelEntry(_darknet("vgg-16.cfg"), 256, "layer6", {"kind": "darknet", "size": 256},
                                           description="Darknet VGG-16 (256 input, [crop] to 224 as layer 0)"))
register_model("resnet50_darknet", ModelEntry(_darknet("resnet50.cfg"), 256, "layer21", {"kind": "darknet", "size": 256},
                                              description="Darknet ResNet-50, 256 input"))
register_model("efficientnet_lite0", ModelEntry(_efficientnet_lite0, 224, "blocks.11.expand",
                                                {"kind": "imagenet", "size": 224, "resize": 256},
                                                description="EfficientNet-Lite0 with the bundled ImageNet weights"))


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def paper_split(name: str) -> str:
    """The split point the paper uses for ``name`` (its default split)."""
    return _entry(name).paper_split


OPERATING_POINTS = Path(__file__).with_name("operating_points.json")


@functools.lru_cache(maxsize=1)
def _operating_points() -> dict:
    return json.loads(OPERATING_POINTS.read_text())


def default_operating_point(name: str) -> tuple[int, tuple[float, float]] | None:
    """(N, (c_min, c_max)) measured or published for ``name`` at its paper split, or None.

    The points live beside the registry in ``operating_points.json``: EfficientNet-Lite0's is written by the
    study that measured it (``python -m eval operating-point --update-registry``), the paper networks' come
    from its Tables 1-3.

    >>> default_operating_point("efficientnet_lite0")[0] >= 2
    True
    """
    p = _operating_points().get(name)
    if p is None or p["split"] != _entry(name).paper_split:
        return None
    return int(p["levels"]), (float(p["clip"][0]), float(p["clip"][1]))


def weights_name(weights) -> str:
    """How ``weights`` is recorded in a deployment identity: ``DEFAULT``, ``random``, an enum member's name,
    or a file's name."""
    from pathlib import PurePath

    if hasattr(weights, "name") and not isinstance(weights, (str, PurePath)):  # a weights enum member
        return str(weights.name)
    if isinstance(weights, PurePath) or (isinstance(weights, str) and ("/" in weights or "." in weights)):
        return PurePath(weights).name
    return str(weights)


def get_model(name: str, *, weights="DEFAULT", **kw):
    """Build a registered model.  ``weights``: ``"DEFAULT"`` (the model's trained weights: bundled, or in the
    torch hub cache; ``WeightsUnavailableError`` naming the fix when they cannot be had), ``"random"`` (random
    initialisation from a fixed seed, so that an edge and a cloud asked for random weights hold the same
    ones: for rate and speed studies and tests), a weights enum member or name (torchvision models), or a
    path (``.weights`` for Darknet models, a state dict otherwise).  ``None`` is refused: say which."""
    from ..errors import WeightsUnavailableError
    from ..identity import RANDOM_WEIGHTS, random_weights_seed

    entry = _entry(name)
    if weights is None:
        raise ValueError(f"weights=None for {name}: pass 'DEFAULT' for its trained weights or 'random' for random "
                         "ones (--weights DEFAULT / --weights random)")
    if isinstance(weights, str) and weights == RANDOM_WEIGHTS:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_weights_seed)
            return entry.builder(weights=None, **kw)
    try:
        return entry.builder(weights=weights, **kw)
    except FileNotFoundError as e:
        if isinstance(e, WeightsUnavailableError):
            raise
        raise WeightsUnavailableError(
            f"no weights {weights_name(weights)} for {name} here ({str(e).split(';')[0]}): pass --weights PATH (a "
            "weights file), or --weights random for random weights (rate and speed studies only)") from None


def list_splits(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """Every split point of ``name`` with its activation shape (C, H, W) at the model's input size."""
    import torch

    e = _entry(name)
    model = e.builder(weights=None)  # shapes only: the weights do not matter
    if hasattr(model, "shapes"):  # Darknet: shapes come from the cfg
        return [(f"layer{k}", model.shapes[k]) for k in model.split_points()]
    shapes = []
    x = torch.zeros(1, 3, e.input_size, e.input_size)
    with torch.no_grad():
        for k, unit_name in enumerate(model.unit_names()):
            x = model.run_units(x, k, k + 1)
            shapes.append((unit_name, tuple(x.shape[1:])))
    return shapes


def split_model(name: str, split: str = "paper", *, weights="DEFAULT", **kw):
    """Cut ``name`` at ``split`` ("paper" = the paper's split point for that network); a ``SplitModel``
    whose ``identity`` is the deployment identity (``splitcodec.identity``).  ``weights`` as in ``get_model``."""
    from .split import split_units

    e = _entry(name)
    model = get_model(name, weights=weights, **kw)
    s = split_units(model, name, e.paper_split if split == "paper" else split, e.input_size, e.preprocess)
    s.task, s.preprocess_spec, s.paper_split = e.task, dict(e.preprocess_spec), e.paper_split
    s.weights = weights_name(weights)
    return s
