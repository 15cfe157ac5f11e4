"""The edge half of split inference, without the network: run the head (torch, or the exported ONNX head
with onnxruntime and NumPy preprocessing, no torch at all) and encode the features."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import codec as _codec
from ..errors import IdentityMismatchError
from ..identity import DeploymentIdentity, file_sha256
from ..models.export import HEAD_FILE_VERSION, head_description  # torch-free: the exported head's description

__all__ = ["EncodedFrame", "PreparedHead", "OnnxHead", "EdgeEncoder", "image_size"]


@dataclass
class EncodedFrame:
    bitstream: bytes
    original_size: tuple[int, int]  # (width, height)
    elements: int
    head_ms: float
    encode_ms: float
    features: np.ndarray | None = None  # kept when the frame belongs to a sequence (re-encoded if a stream restarts)
    rate: dict | None = None  # what a rate controller chose for it (target, λ, N), reported with its answer

    @property
    def bits_per_element(self) -> float:
        return 8 * len(self.bitstream) / self.elements



class PreparedHead:
    """A head ready to run on one image: ``features(image) -> (features, (width, height))``, with ``identity``
    (its :class:`~splitcodec.identity.DeploymentIdentity`), ``feature_shape``, ``input_size`` and
    ``preprocess_spec``.  :class:`EdgeEncoder` runs any subclass (an ONNX session, a torch module, or recorded
    activations replayed by a benchmark)."""

    identity: DeploymentIdentity
    feature_shape: tuple
    input_size: int
    preprocess_spec: dict

    def features(self, image) -> tuple[np.ndarray, tuple[int, int]]:
        raise NotImplementedError


class OnnxHead(PreparedHead):
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
            try:
                meta = json.loads(side.read_text())
            except (ValueError, UnicodeDecodeError):
                raise ValueError(f"{side} is not a splitcodec head description (not JSON)") from None
            if not isinstance(meta, dict) or meta.get("format") != "splitcodec-head":
                raise ValueError(f"{side} is not a splitcodec head description")
            if meta.get("version") != HEAD_FILE_VERSION:
                raise ValueError(f"{side} is a head description of version {meta.get('version')} (this splitcodec "
                                 f"reads {HEAD_FILE_VERSION}, which records the deployment identity): re-export the "
                                 "head with python -m edge_app.export_head")
            if meta.get("onnx_sha256") != file_sha256(path):
                raise IdentityMismatchError(f"{path} is not the file {side} describes (its SHA-256 differs): "
                                            "re-export the head with python -m edge_app.export_head")
        self.identity = DeploymentIdentity.from_dict(meta.get("identity"), str(onnx_path))
        self.name, self.split = meta["model"], meta["split"]
        self.paper_split, self.task = meta.get("paper_split"), meta.get("task", "classification")
        self.input_size, self.feature_shape = int(meta["input_size"]), tuple(meta["feature_shape"])
        self.preprocess_spec = meta["preprocess"]
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def features(self, image) -> tuple[np.ndarray, tuple[int, int]]:
        from ..preprocessing import preprocess

        x = preprocess(image, self.preprocess_spec)[None]
        (f,) = self.session.run(["features"], {"image": x})
        return f[0], image_size(image)


class _TorchHead(PreparedHead):
    def __init__(self, split):
        self.split, self.feature_shape, self.input_size = split, tuple(split.feature_shape), split.input_size
        self.preprocess_spec = split.preprocess_spec

    @property
    def identity(self) -> DeploymentIdentity:
        return self.split.identity

    def features(self, image) -> tuple[np.ndarray, tuple[int, int]]:
        import torch

        with torch.no_grad():
            return self.split.head(self.split.preprocess(image)[None])[0].numpy(), image_size(image)


class EdgeEncoder:
    """Run the head and encode the features.

    ``head`` is a split model (run by torch, or with ``runtime="onnx"`` from the
    exported ``onnx_path``) or an :class:`OnnxHead` (no torch at all).
    """

    def __init__(self, head, codec: _codec.FeatureCodec, *, runtime: str = "torch", onnx_path=None):
        self.codec, self.runtime = codec, runtime
        if isinstance(head, PreparedHead):  # an already prepared head (shared session/model, recorded activations)
            self.head = head
            self.runtime = {OnnxHead: "onnx", _TorchHead: "torch"}.get(type(head), type(head).__name__)
        elif runtime == "onnx":
            if onnx_path is None:
                raise ValueError("runtime 'onnx' needs the exported head (edge_app.export_head)")
            self.head = OnnxHead(onnx_path, meta=head_description(head))
        elif runtime == "torch":
            self.head = _TorchHead(head)
        else:
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")

    @property
    def identity(self) -> DeploymentIdentity:
        """The deployment identity of the head (sent with every frame)."""
        return self.head.identity

    def warmup(self) -> None:
        """Load the compiled kernels and run the head once, so the first frame is not slow."""
        self.codec.encode(np.zeros(self.head.feature_shape, np.float32))
        self.features(np.zeros((self.head.input_size, self.head.input_size, 3), np.uint8))

    def features(self, image) -> tuple[np.ndarray, tuple[int, int]]:
        return self.head.features(image)

    def encode(self, image, sequence=None) -> EncodedFrame:
        """Run the head and encode; with ``sequence`` (a :class:`~splitcodec.SequenceEncoder` over this
        encoder's codec) as the sequence's next frame, intra or predicted."""
        t0 = time.perf_counter()
        feats, size = self.features(image)
        t1 = time.perf_counter()
        data = self.codec.encode(feats) if sequence is None else sequence.encode(feats)
        t2 = time.perf_counter()
        return EncodedFrame(data, size, int(feats.size), 1e3 * (t1 - t0), 1e3 * (t2 - t1),
                            feats if sequence is not None else None)


def image_size(image) -> tuple[int, int]:
    if hasattr(image, "size") and not isinstance(image, np.ndarray):
        return tuple(image.size)
    a = np.asarray(image)
    return int(a.shape[1]), int(a.shape[0])


