"""torchvision's VGG-16 and ResNet-50 as flat unit sequences (split points by module name)."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

__all__ = ["UnitSequence", "vgg16", "resnet50", "load_weights"]


class UnitSequence(nn.Module):
    """Wraps a model with an ordered list of named units whose composition is its forward."""

    def __init__(self, model: nn.Module, units: "OrderedDict[str, nn.Module]"):
        super().__init__()
        self.model = model
        self._units = list(units.items())  # modules are registered through ``model``

    def unit_names(self) -> list[str]:
        return [n for n, _ in self._units[:-1]]

    def run_units(self, x, start: int = 0, stop: int | None = None):
        for _, u in self._units[start:stop]:
            x = u(x)
        return x

    def forward(self, x):
        return self.run_units(x)

    def state_dict(self, *a, **kw):  # torchvision's key names, without the wrapper prefix
        return self.model.state_dict(*a, **kw)

    def load_state_dict(self, state, strict: bool = True):
        return self.model.load_state_dict(state, strict=strict)


class _FlattenThen(nn.Module):
    def __init__(self, pool: nn.Module | None, head: nn.Module):
        super().__init__()
        self.pool, self.head = pool, head

    def forward(self, x):
        if self.pool is not None:
            x = self.pool(x)
        return self.head(torch.flatten(x, 1))


def load_weights(model: nn.Module, weights, enum_cls, allow_download: bool = False) -> None:
    """``weights``: None, "DEFAULT", an enum member or its name (from the torch hub cache),
    or a path to a state dict."""
    if weights is None:
        return
    if isinstance(weights, (str, os.PathLike)) and Path(weights).suffix in (".pth", ".pt") :
        path = Path(weights)
        if not path.exists():
            raise FileNotFoundError(f"weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        w = enum_cls.verify(weights)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
        if cached.exists():
            state = torch.load(cached, map_location="cpu", weights_only=True)
        elif allow_download:
            state = w.get_state_dict(progress=True, check_hash=True)
        else:
            raise FileNotFoundError(
                f"{enum_cls.__name__}.{w.name} is not in the torch hub cache ({cached}); copy the file there "
                f"(it is downloaded from {w.url}), pass weights=PATH, or allow_download=True on a connected machine"
            )
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"weights do not match {type(model).__name__}: {str(e).splitlines()[0]}") from None


def vgg16(*, weights=None, allow_download: bool = False) -> UnitSequence:
    from torchvision.models import VGG16_Weights
    from torchvision.models import vgg16 as tv_vgg16

    m = tv_vgg16(weights=None)
    load_weights(m, weights, VGG16_Weights, allow_download)
    units = OrderedDict((f"features.{i}", layer) for i, layer in enumerate(m.features))
    units["avgpool"] = m.avgpool
    units["classifier"] = _FlattenThen(None, m.classifier)
    return UnitSequence(m, units).eval()


def resnet50(*, weights=None, allow_download: bool = False) -> UnitSequence:
    from torchvision.models import ResNet50_Weights
    from torchvision.models import resnet50 as tv_resnet50

    m = tv_resnet50(weights=None)
    load_weights(m, weights, ResNet50_Weights, allow_download)
    units = OrderedDict([("conv1", m.conv1), ("bn1", m.bn1), ("relu", m.relu), ("maxpool", m.maxpool)])
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for i, block in enumerate(getattr(m, stage)):
            units[f"{stage}.{i}"] = block
    units["fc"] = _FlattenThen(m.avgpool, m.fc)
    return UnitSequence(m, units).eval()
