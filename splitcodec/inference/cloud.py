"""The cloud half of split inference, without the network: check a stream's header against the split,
decode it and run the tail (with its postprocessing) on one or many tensors at once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import codec as _codec
from ..bitstream import DEFAULT_MAX_ELEMENTS, Header
from ..errors import FeatureShapeError, ReferenceFrameError

__all__ = ["CloudTail", "Prediction", "ClassScore", "BoxDetection"]


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
        self.identity = split.identity  # what a request's head identity must equal
        self.device = torch.device(device)
        self.tail = split.tail.to(self.device).eval()
        self.feature_shape = tuple(split.feature_shape)
        # headers may declare up to this many elements before RESOURCE_EXHAUSTED; any shape other
        # than the split's is rejected before decoding, so decoding allocates the split's size only
        self.max_elements = max_elements or DEFAULT_MAX_ELEMENTS
        self.task = getattr(split, "task", "classification")
        if self.task == "classification":
            from ..models import imagenet_categories

            self.names = imagenet_categories()

    def warmup(self) -> None:
        """Load the compiled decoder and run the tail once."""
        from ..quantization import UniformQuantizer

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

    def decode(self, data: bytes, sequence=None) -> tuple[np.ndarray, float]:
        """The stream's tensor and the decode time (ms).  ``sequence``: the
        :class:`~splitcodec.SequenceDecoder` of the stream the frame belongs to (predicted frames need it;
        without one they raise ``ReferenceFrameError``)."""
        t = time.perf_counter()
        h = self.check_header(data)
        if sequence is not None:
            x = sequence.decode(data)
        elif h.predicted:
            raise ReferenceFrameError(
                f"frame {h.frame_number} of sequence {h.sequence:08x} is predicted from the frame before it: single "
                "calls take intra frames only (send sequences over InferStream)")
        else:
            x = _codec.decode(data, max_elements=self.max_elements)
        return x.reshape(self.feature_shape), 1e3 * (time.perf_counter() - t)

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
        from ..models.yolo import COCO80_TO_91, COCO_NAMES, DEPLOYMENT, letterbox_geometry, postprocess

        net = self.split.input_size
        sizes = original_sizes or [None] * heads[0].shape[0]
        sizes = [(w or net, h or net) for w, h in (size or (net, net) for size in sizes)]  # no size: the input's
        geos = [letterbox_geometry(w, h, net) for w, h in sizes]
        layers = [self.split.model.layers[i] for i in self.split.model.yolo_layers]
        dets = postprocess([h.cpu() for h in heads], layers, geos, **DEPLOYMENT)
        return [Prediction(detections=[BoxDetection(tuple(float(v) for v in b), COCO80_TO_91[int(c)],
                                                    COCO_NAMES[int(c)], float(s))
                                       for b, s, c in zip(d.boxes.tolist(), d.scores.tolist(), d.labels.tolist())])
                for d in dets]
