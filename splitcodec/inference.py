"""Split inference without the network: the edge half (head + encode) and the
cloud half (validate + decode + tail + postprocess), batched.

The apps are thin wrappers around these two classes; everything here is
testable without gRPC.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import codec as _codec
from .bitstream import DEFAULT_MAX_ELEMENTS, Header
from .errors import SplitCodecError
from .models.export import HEAD_FILE_VERSION, head_description  # torch-free: the exported head's description

__all__ = ["FeatureShapeError", "EncodedFrame", "OnnxHead", "EdgeEncoder", "CloudTail", "Prediction", "ClassScore",
           "BoxDetection", "default_operating_point"]


class FeatureShapeError(SplitCodecError, ValueError):
    """The stream's tensor does not have the shape the model's split produces."""


# Operating points chosen by measurement (python -m eval operating-point, docs/results/operating_point.json)
# or, for the paper's networks, taken from its Tables 1-3 (Darknet activation scales).
_DEFAULTS = {
    "efficientnet_lite0": (24, (0.0, 5.67578125)),
    "yolov3": (8, (-1.0, 4.0)),
    "vgg16_darknet": (8, (0.0, 2400.0)),
    "resnet50_darknet": (8, (0.0, 14.0)),
}


def default_operating_point(model: str) -> tuple[int, tuple[float, float]] | None:
    """(N, (c_min, c_max)) known for ``model`` at its paper split, or None."""
    return _DEFAULTS.get(model)


@dataclass
class EncodedFrame:
    bitstream: bytes
    original_size: tuple[int, int]  # (width, height)
    elements: int
    head_ms: float
    encode_ms: float

    @property
    def bits_per_element(self) -> float:
        return 8 * len(self.bitstream) / self.elements



class OnnxHead:
    """A head exported by ``edge_app.export_head`` run with onnxruntime, preprocessing in
    NumPy: the edge loop without torch.  Reads ``<onnx>.json`` written beside the model."""

    def __init__(self, onnx_path, meta: dict | None = None):
        import json
        from pathlib import Path

        import onnxruntime as ort

        path = Path(onnx_path)
        if meta is None:
            side = Path(str(path) + ".json")
            if not side.exists():
                raise FileNotFoundError(f"{side} not found: export the head with edge_app.export_head")
            meta = json.loads(side.read_text())
            if meta.get("format") != "splitcodec-head" or meta.get("version") != HEAD_FILE_VERSION:
                raise ValueError(f"{side} is not a splitcodec head description (format/version)")
        self.name, self.split = meta["model"], meta["split"]
        self.paper_split, self.task = meta.get("paper_split"), meta.get("task", "classification")
        self.input_size, self.feature_shape = int(meta["input_size"]), tuple(meta["feature_shape"])
        self.preprocess_spec = meta["preprocess"]
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def features(self, image) -> tuple[np.ndarray, tuple[int, int]]:
        from .preprocessing import preprocess

        x = preprocess(image, self.preprocess_spec)[None]
        (f,) = self.session.run(["features"], {"image": x})
        return f[0], _image_size(image)


class _TorchHead:
    def __init__(self, split):
        self.split, self.feature_shape, self.input_size = split, tuple(split.feature_shape), split.input_size
        self.preprocess_spec = split.preprocess_spec

    def features(self, image) -> tuple[np.ndarray, tuple[int, int]]:
        import torch

        with torch.no_grad():
            return self.split.head(self.split.preprocess(image)[None])[0].numpy(), _image_size(image)


class EdgeEncoder:
    """Run the head and encode the features.

    ``head`` is a split model (run by torch, or with ``runtime="onnx"`` from the
    exported ``onnx_path``) or an :class:`OnnxHead` (no torch at all).
    """

    def __init__(self, head, codec: _codec.FeatureCodec, *, runtime: str = "torch", onnx_path=None):
        self.codec, self.runtime = codec, runtime
        if isinstance(head, (OnnxHead, _TorchHead)):  # an already prepared head (shared session/model)
            self.head, self.runtime = head, "onnx" if isinstance(head, OnnxHead) else "torch"
        elif runtime == "onnx":
            if onnx_path is None:
                raise ValueError("runtime 'onnx' needs the exported head (edge_app.export_head)")
            self.head = OnnxHead(onnx_path, meta=head_description(head))
        elif runtime == "torch":
            self.head = _TorchHead(head)
        else:
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")

    def warmup(self) -> None:
        """Load the compiled kernels and run the head once, so the first frame is not slow."""
        self.codec.encode(np.zeros(self.head.feature_shape, np.float32))
        self.features(np.zeros((self.head.input_size, self.head.input_size, 3), np.uint8))

    def features(self, image) -> tuple[np.ndarray, tuple[int, int]]:
        return self.head.features(image)

    def encode(self, image) -> EncodedFrame:
        t0 = time.perf_counter()
        feats, size = self.features(image)
        t1 = time.perf_counter()
        data = self.codec.encode(feats)
        t2 = time.perf_counter()
        return EncodedFrame(data, size, int(feats.size), 1e3 * (t1 - t0), 1e3 * (t2 - t1))


def _image_size(image) -> tuple[int, int]:
    if hasattr(image, "size") and not isinstance(image, np.ndarray):
        return tuple(image.size)
    a = np.asarray(image)
    return int(a.shape[1]), int(a.shape[0])


@dataclass
class ClassScore:
    index: int
    name: str
    score: float


@dataclass
class BoxDetection:
    box: tuple[float, float, float, float]
    category_id: int
    name: str
    score: float


@dataclass
class Prediction:
    classes: list[ClassScore] = field(default_factory=list)
    detections: list[BoxDetection] = field(default_factory=list)
    decode_ms: float = 0.0
    tail_ms: float = 0.0
    batch_size: int = 1


class CloudTail:
    """The cloud half of one model and split: validates streams against the split's
    feature shape, decodes them and runs the tail on one or many at once."""

    def __init__(self, split, *, device: str = "cpu", max_elements: int | None = None):
        import torch

        self.split = split
        self.device = torch.device(device)
        self.tail = split.tail.to(self.device).eval()
        self.feature_shape = tuple(split.feature_shape)
        # headers may declare up to this many elements before RESOURCE_EXHAUSTED; any shape other
        # than the split's is rejected before decoding, so decoding allocates the split's size only
        self.max_elements = max_elements or DEFAULT_MAX_ELEMENTS
        self.task = getattr(split, "task", "classification")
        if self.task == "classification":
            from .models import imagenet_categories

            self.names = imagenet_categories()

    def warmup(self) -> None:
        """Load the compiled decoder and run the tail once."""
        from .quantization import UniformQuantizer

        x = np.zeros(self.feature_shape, np.float32)
        feats, _ = self.decode(_codec.FeatureCodec(UniformQuantizer(0.0, 1.0, 4)).encode(x))
        self.run([feats])

    def check_header(self, data: bytes) -> Header:
        """Parse the header and check the shape before anything is decoded."""
        h = _codec.decode_header(data, max_elements=self.max_elements)
        shape = tuple(h.shape)
        if shape != self.feature_shape and shape != (1, *self.feature_shape):
            raise FeatureShapeError(
                f"stream holds a tensor of shape {shape}; {self.split.name} split {self.split.split} "
                f"produces {self.feature_shape}")
        return h

    def decode(self, data: bytes) -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        self.check_header(data)
        x = _codec.decode(data, max_elements=self.max_elements).reshape(self.feature_shape)
        return x, 1e3 * (time.perf_counter() - t)

    def run(self, features: list[np.ndarray], original_sizes=None, top_k: int = 5) -> list[Prediction]:
        """Tail forward pass on a batch of decoded feature tensors."""
        import torch

        t = time.perf_counter()
        with torch.no_grad():
            out = self.tail(torch.from_numpy(np.stack(features)).to(self.device))
        if self.task == "detection":
            preds = self._detections(out, original_sizes)
        else:
            preds = self._classes(out, top_k)
        ms = 1e3 * (time.perf_counter() - t)
        for p in preds:
            p.tail_ms, p.batch_size = ms, len(features)
        return preds

    def _classes(self, out, top_k: int) -> list[Prediction]:
        import torch

        prob = torch.softmax(out.float().cpu().flatten(1), 1)
        k = max(1, min(top_k, prob.shape[1]))
        top = prob.topk(k, dim=1)
        return [Prediction(classes=[ClassScore(int(i), self.names[int(i)] if int(i) < len(self.names) else str(int(i)),
                                               float(v)) for v, i in zip(vals, idx)])
                for vals, idx in zip(top.values, top.indices)]

    def _detections(self, heads, original_sizes) -> list[Prediction]:
        from .models.yolo import COCO80_TO_91, COCO_NAMES, DEPLOYMENT, letterbox_geometry, postprocess

        net = self.split.input_size
        sizes = original_sizes or [(net, net)] * heads[0].shape[0]
        geos = [letterbox_geometry(w or net, h or net, net) for w, h in sizes]
        layers = [self.split.model.layers[i] for i in self.split.model.yolo_layers]
        dets = postprocess([h.cpu() for h in heads], layers, geos, **DEPLOYMENT)
        return [Prediction(detections=[BoxDetection(tuple(float(v) for v in b), COCO80_TO_91[int(c)],
                                                    COCO_NAMES[int(c)], float(s))
                                       for b, s, c in zip(d.boxes.tolist(), d.scores.tolist(), d.labels.tolist())])
                for d in dets]
