"""Darknet networks in PyTorch: a ``.cfg`` parser, the layers the paper's three
networks use, and a ``.weights`` reader.

Layer numbering is Darknet's: layer ``i`` is the i-th section after ``[net]``,
counting from 0, so "YOLOv3 layer 12" (52×52×256 at 416), "VGG-16 layer 6"
(56×56×128; layer 0 is the ``[crop]``) and "ResNet-50 layer 21" (32×32×512 at
256) mean what they mean in the paper and in Darknet's own output.

Semantics follow Darknet where it differs from common PyTorch layers: batch
norm divides by ``sqrt(var) + 1e-6``; ``[shortcut]`` adds tensors of different
shapes by strided sampling over the common channels; ``[maxpool]`` pads
``size - 1`` by default, mostly on the right/bottom; ``[crop]`` centre-crops
and maps [0, 1] inputs to [-1, 1]; leaky ReLU has slope 0.1.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["parse_cfg", "DarknetNet", "load_darknet_weights", "save_darknet_weights", "CFG_DIR", "DarknetWeightsError"]

CFG_DIR = Path(__file__).parent / "cfg"
BN_EPS = 1e-6


class DarknetWeightsError(ValueError):
    """A ``.weights`` file that does not fit its cfg."""


@dataclass
class Section:
    type: str
    options: dict = field(default_factory=dict)
    line: int = 0

    def int(self, key, default=None):
        v = self.options.get(key, default)
        if v is None:
            raise ValueError(f"[{self.type}] at line {self.line}: missing '{key}'")
        return int(v)

    def float(self, key, default=None):
        return float(self.options.get(key, default))

    def ints(self, key):
        return [int(v) for v in str(self.options[key]).split(",") if v.strip()]


def parse_cfg(source) -> list[Section]:
    """Sections of a Darknet cfg (path or text); the first is ``[net]``."""
    text = Path(source).read_text() if isinstance(source, (str, os.PathLike)) and Path(source).exists() else str(source)
    sections: list[Section] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ValueError(f"cfg line {n}: malformed section header {raw!r}")
            sections.append(Section(line[1:-1].strip().lower(), {}, n))
        else:
            if not sections or "=" not in line:
                raise ValueError(f"cfg line {n}: expected 'key=value' inside a section, got {raw!r}")
            k, v = line.split("=", 1)
            sections[-1].options[k.strip()] = v.strip()
    if not sections or sections[0].type not in ("net", "network"):
        raise ValueError("a Darknet cfg must start with a [net] section")
    return sections


def _activation(name: str):
    if name == "leaky":
        return lambda x: F.leaky_relu(x, 0.1)
    if name == "relu":
        return F.relu
    if name == "linear":
        return lambda x: x
    if name == "logistic":
        return torch.sigmoid
    raise ValueError(f"unsupported Darknet activation {name!r}")


class DarknetBatchNorm(nn.Module):
    """Darknet's inference batch norm: scale · (x − mean) / (sqrt(var) + 1e-6) + bias."""

    def __init__(self, c: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))  # Darknet "scales"
        self.bias = nn.Parameter(torch.zeros(c))  # Darknet "biases"
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        inv = self.weight / (self.running_var.sqrt() + BN_EPS)
        return x * inv.view(shape) + (self.bias - self.running_mean * inv).view(shape)


class _Layer(nn.Module):
    """A Darknet layer; ``refs`` are the absolute indices of earlier outputs it reads."""

    kind = ""
    refs: tuple[int, ...] = ()

    def forward(self, x, outputs):  # pragma: no cover - overridden
        raise NotImplementedError


class Convolutional(_Layer):
    kind = "convolutional"

    def __init__(self, s: Section, c_in: int):
        super().__init__()
        size, stride = s.int("size", 1), s.int("stride", 1)
        pad = size // 2 if s.int("pad", 0) else s.int("padding", 0)
        groups = s.int("groups", 1)
        self.filters = s.int("filters", 1)
        self.batch_normalize = bool(s.int("batch_normalize", 0))
        self.conv = nn.Conv2d(c_in, self.filters, size, stride, pad, groups=groups, bias=not self.batch_normalize)
        self.bn = DarknetBatchNorm(self.filters) if self.batch_normalize else None
        self.act_name = s.options.get("activation", "logistic")
        self.act = _activation(self.act_name)

    def forward(self, x, outputs):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class Connected(_Layer):
    kind = "connected"

    def __init__(self, s: Section, c_in: int):
        super().__init__()
        self.outputs = s.int("output", 1)
        self.batch_normalize = bool(s.int("batch_normalize", 0))
        # with batch norm Darknet's `biases` are the BN shift after normalising (forward_connected_layer)
        self.fc = nn.Linear(c_in, self.outputs, bias=not self.batch_normalize)
        self.bn = DarknetBatchNorm(self.outputs) if self.batch_normalize else None
        self.act_name = s.options.get("activation", "logistic")
        self.act = _activation(self.act_name)

    def forward(self, x, outputs):
        x = self.fc(torch.flatten(x, 1))
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x).view(x.shape[0], -1, 1, 1)


class Shortcut(_Layer):
    kind = "shortcut"

    def __init__(self, s: Section, index: int):
        super().__init__()
        frm = s.int("from")
        self.refs = (frm if frm >= 0 else index + frm,)
        self.act_name = s.options.get("activation", "linear")
        self.act = _activation(self.act_name)
        # out = alpha * input + beta * from, over the common region (shortcut_cpu's s1 and s2)
        self.alpha, self.beta = s.float("alpha", 1.0), s.float("beta", 1.0)

    def _mix(self, out, add):
        if self.alpha == 1.0 and self.beta == 1.0:
            return out + add
        return self.alpha * out + self.beta * add

    def forward(self, x, outputs):
        add = outputs[self.refs[0]]
        if add.shape == x.shape:
            return self.act(self._mix(x, add))
        # Darknet: sample the larger map with a stride, add over the common channels
        (_, c1, _, w1), (_, c2, _, w2) = add.shape, x.shape
        stride, sample = max(w1 // w2, 1), max(w2 // w1, 1)
        c = min(c1, c2)
        src = add[:, :c, ::stride, ::stride]
        out = x.clone()
        dst = out[:, :c, ::sample, ::sample]
        h, w = min(src.shape[2], dst.shape[2]), min(src.shape[3], dst.shape[3])
        out[:, :c, ::sample, ::sample][:, :, :h, :w] = self._mix(dst[:, :, :h, :w], src[:, :, :h, :w])
        return self.act(out)


class Route(_Layer):
    kind = "route"

    def __init__(self, s: Section, index: int):
        super().__init__()
        self.refs = tuple(r if r >= 0 else index + r for r in s.ints("layers"))

    def forward(self, x, outputs):
        parts = [outputs[r] for r in self.refs]
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


class Upsample(_Layer):
    kind = "upsample"

    def __init__(self, s: Section):
        super().__init__()
        stride = s.int("stride", 2)
        if stride == 0:
            raise ValueError(f"cfg line {s.line}: [upsample] stride must not be 0")
        self.reverse = stride < 0  # Darknet: a negative stride sums stride×stride blocks instead
        self.stride = abs(stride)
        self.scale = s.float("scale", 1.0)

    def out_size(self, n: int) -> int:
        return n // self.stride if self.reverse else n * self.stride

    def forward(self, x, outputs):
        if self.reverse:
            y = F.avg_pool2d(x, self.stride) * (self.stride * self.stride)
        else:
            y = F.interpolate(x, scale_factor=self.stride, mode="nearest")
        return y if self.scale == 1.0 else y * self.scale


class MaxPool(_Layer):
    kind = "maxpool"

    def __init__(self, s: Section):
        super().__init__()
        self.stride = s.int("stride", 1)
        self.size = s.int("size", self.stride)  # Darknet: size defaults to the stride
        self.padding = s.int("padding", self.size - 1)

    def out_size(self, n: int) -> int:
        return (n + self.padding - self.size) // self.stride + 1

    def forward(self, x, outputs):
        h, w = x.shape[-2:]
        left = self.padding // 2
        right_w = (self.out_size(w) - 1) * self.stride + self.size - w - left
        right_h = (self.out_size(h) - 1) * self.stride + self.size - h - left
        x = F.pad(x, [left, max(right_w, 0), left, max(right_h, 0)], value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class AvgPool(_Layer):
    kind = "avgpool"

    def forward(self, x, outputs):
        return x.mean(dim=(2, 3), keepdim=True)


class Softmax(_Layer):
    kind = "softmax"

    def forward(self, x, outputs):
        return torch.softmax(torch.flatten(x, 1), 1).view(x.shape[0], -1, 1, 1)


class Dropout(_Layer):
    kind = "dropout"

    def forward(self, x, outputs):
        return x


class Crop(_Layer):
    kind = "crop"

    def __init__(self, s: Section):
        super().__init__()
        self.h, self.w = s.int("crop_height"), s.int("crop_width")
        self.adjust = not s.int("noadjust", 0)

    def forward(self, x, outputs):
        H, W = x.shape[-2:]
        dy, dx = (H - self.h) // 2, (W - self.w) // 2
        x = x[..., dy:dy + self.h, dx:dx + self.w]
        return x * 2 - 1 if self.adjust else x


class Yolo(_Layer):
    """Passes the raw head through; anchors and classes are kept for decoding."""

    kind = "yolo"

    def __init__(self, s: Section):
        super().__init__()
        anchors = s.ints("anchors")
        self.all_anchors = [(anchors[2 * i], anchors[2 * i + 1]) for i in range(len(anchors) // 2)]
        self.mask = s.ints("mask") if "mask" in s.options else list(range(len(self.all_anchors)))
        self.anchors = [self.all_anchors[m] for m in self.mask]
        self.classes = s.int("classes", 20)

    def forward(self, x, outputs):
        return x


# Sections that only matter for training: Darknet's inference output passes through them unchanged
# (a [cost] layer computes the loss against the truth; AlexeyAB's cfgs end with one).
TRAINING_ONLY = ("cost",)


class TrainingOnly(_Layer):
    """A training-only section (``[cost]``): accepted and ignored, its output is its input."""

    def __init__(self, s: Section):
        super().__init__()
        self.kind = s.type

    def forward(self, x, outputs):
        return x


class DarknetNet(nn.Module):
    """A Darknet network from its cfg.  ``forward`` returns the list of YOLO head
    outputs for a detector, else the last layer's output."""

    def __init__(self, cfg):
        super().__init__()
        sections = parse_cfg(cfg)
        net = sections[0]
        self.height, self.width, self.channels = net.int("height", 0), net.int("width", 0), net.int("channels", 3)
        layers: list[_Layer] = []
        shapes: list[tuple[int, int, int]] = []  # (C, H, W) of each output at the cfg's input size
        c, h, w = self.channels, self.height, self.width
        for i, s in enumerate(sections[1:]):
            if s.type in ("convolutional", "conv"):
                layer = Convolutional(s, c)
                size, stride = layer.conv.kernel_size[0], layer.conv.stride[0]
                pad = layer.conv.padding[0]
                c, h, w = layer.filters, (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
            elif s.type in ("connected", "conn"):
                layer = Connected(s, c * h * w)
                c, h, w = layer.outputs, 1, 1
            elif s.type == "shortcut":
                layer = Shortcut(s, i)
                self._check_refs(layer, i, s)
            elif s.type == "route":
                layer = Route(s, i)
                self._check_refs(layer, i, s)
                c = sum(shapes[r][0] for r in layer.refs)
                h, w = shapes[layer.refs[0]][1:]
            elif s.type == "upsample":
                layer = Upsample(s)
                h, w = layer.out_size(h), layer.out_size(w)
            elif s.type in ("maxpool", "max"):
                layer = MaxPool(s)
                h, w = layer.out_size(h), layer.out_size(w)
            elif s.type in ("avgpool", "avg"):
                layer = AvgPool()
                h, w = 1, 1
            elif s.type in ("softmax", "soft"):
                layer = Softmax()
            elif s.type == "dropout":
                layer = Dropout()
            elif s.type == "crop":
                layer = Crop(s)
                h, w = layer.h, layer.w
            elif s.type in ("yolo", "region"):
                layer = Yolo(s)
            elif s.type in TRAINING_ONLY:
                layer = TrainingOnly(s)  # identity at inference: accepted and ignored
            else:
                raise ValueError(f"cfg line {s.line}: unsupported layer type [{s.type}]")
            layers.append(layer)
            shapes.append((c, h, w))
        self.layers = nn.ModuleList(layers)
        self.shapes = shapes
        self.yolo_layers = [i for i, l in enumerate(layers) if l.kind == "yolo"]

    @staticmethod
    def _check_refs(layer, i: int, s: Section) -> None:
        for r in layer.refs:
            if not 0 <= r < i:
                raise ValueError(f"cfg line {s.line}: layer {i} ({s.type}) refers to layer {r}, which is not before it")

    def split_points(self) -> list[int]:
        """Layers after which one tensor carries everything the rest needs."""
        n = len(self.layers)
        out = []
        for k in range(n - 1):
            needed = {r for j in range(k + 1, n) for r in self.layers[j].refs if r <= k}
            yolo_before = any(y <= k for y in self.yolo_layers)
            if needed <= {k} and not yolo_before:
                out.append(k)
        return out

    def unit_names(self) -> list[str]:
        return [f"layer{k}" for k in self.split_points()]

    def run(self, x, start: int = 0, stop: int | None = None):
        """Layers ``[start, stop)``; ``x`` is the input (start = 0) or the output of layer start − 1."""
        stop = len(self.layers) if stop is None else stop
        outputs: dict[int, torch.Tensor] = {start - 1: x}
        heads = []
        for i in range(start, stop):
            x = self.layers[i](x, outputs)
            outputs[i] = x
            if self.layers[i].kind == "yolo":
                heads.append(x)
        if stop == len(self.layers) and self.yolo_layers:
            return heads
        return x

    def run_units(self, x, start_unit: int = 0, stop_unit: int | None = None):
        """The same cut by split-point order (the ``_Range`` interface of split models)."""
        points = self.split_points()
        start = 0 if start_unit == 0 else points[start_unit - 1] + 1
        stop = None if stop_unit is None or stop_unit > len(points) else points[stop_unit - 1] + 1
        return self.run(x, start, stop)

    def forward(self, x):
        return self.run(x)


# --- .weights files -----------------------------------------------------------------------------

def _weight_tensors(layer: _Layer) -> list[tuple[str, torch.Tensor]]:
    """Tensors in the order Darknet stores them for one layer."""
    if isinstance(layer, Convolutional):
        t = []
        if layer.bn is not None:
            t += [("biases", layer.bn.bias), ("scales", layer.bn.weight),
                  ("rolling_mean", layer.bn.running_mean), ("rolling_variance", layer.bn.running_var)]
        else:
            t.append(("biases", layer.conv.bias))
        return t + [("weights", layer.conv.weight)]
    if isinstance(layer, Connected):
        bias = layer.bn.bias if layer.bn is not None else layer.fc.bias
        t = [("biases", bias), ("weights", layer.fc.weight)]
        if layer.bn is not None:
            t += [("scales", layer.bn.weight), ("rolling_mean", layer.bn.running_mean),
                  ("rolling_variance", layer.bn.running_var)]
        return t
    return []


def load_darknet_weights(model: DarknetNet, path, progress: bool = False) -> dict:
    """Read a Darknet ``.weights`` file into ``model``; returns its header.

    Header: int32 major, minor, revision, then ``seen`` as int64 when
    ``major * 10 + minor >= 2`` (and both < 1000), else int32.  Then, layer by
    layer in cfg order, float32 tensors as listed by :func:`_weight_tensors`.
    A file too short or too long for the cfg is an error naming the layer.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file not found: {path}")
    data = path.read_bytes()
    if len(data) < 16:
        raise DarknetWeightsError(f"{path}: {len(data)} bytes is too short for a Darknet weights header")
    major, minor, revision = struct.unpack_from("<3i", data, 0)
    if major * 10 + minor >= 2 and major < 1000 and minor < 1000:
        (seen,) = struct.unpack_from("<q", data, 12)
        pos = 20
    else:
        (seen,) = struct.unpack_from("<i", data, 12)
        pos = 16
    transpose = major > 1000 or minor > 1000
    floats = np.frombuffer(data, dtype="<f4", offset=pos, count=(len(data) - pos) // 4)
    if (len(data) - pos) % 4:
        raise DarknetWeightsError(f"{path}: payload of {len(data) - pos} bytes is not a whole number of float32")
    off = 0
    layers = list(enumerate(model.layers))
    if progress:
        from tqdm import tqdm

        layers = tqdm(layers, desc=f"loading {path.name}", unit="layer", leave=False)
    with torch.no_grad():
        for i, layer in layers:
            for name, t in _weight_tensors(layer):
                n = t.numel()
                if off + n > floats.size:
                    raise DarknetWeightsError(
                        f"{path}: file ends inside layer {i} ({layer.kind}) '{name}': needs {n} floats, "
                        f"{floats.size - off} left; the weights do not match this cfg"
                    )
                arr = floats[off:off + n]
                if transpose and isinstance(layer, Connected) and name == "weights":
                    arr = arr.reshape(t.shape[1], t.shape[0]).T
                t.copy_(torch.from_numpy(np.array(arr, dtype=np.float32).reshape(t.shape)))
                off += n
    if off != floats.size:
        raise DarknetWeightsError(
            f"{path}: {4 * (floats.size - off)} bytes left after the last layer ({len(model.layers) - 1}); "
            "the weights do not match this cfg"
        )
    return {"major": major, "minor": minor, "revision": revision, "seen": seen}


def save_darknet_weights(model: DarknetNet, path, *, major: int = 0, minor: int = 2, revision: int = 0,
                         seen: int = 0) -> None:
    """Write ``model`` as a Darknet ``.weights`` file (the inverse of :func:`load_darknet_weights`)."""
    parts = [struct.pack("<3i", major, minor, revision)]
    parts.append(struct.pack("<q", seen) if major * 10 + minor >= 2 and major < 1000 and minor < 1000
                 else struct.pack("<i", seen))
    for layer in model.layers:
        for _, t in _weight_tensors(layer):
            parts.append(t.detach().cpu().numpy().astype("<f4").tobytes())
    Path(path).write_bytes(b"".join(parts))
