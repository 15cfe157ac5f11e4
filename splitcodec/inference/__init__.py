"""Split inference without the network: the edge runtime (head + encode, ``inference.edge``) and the cloud
runtime (validate + decode + tail + postprocess, batched; ``inference.cloud``).

The apps are thin wrappers around ``EdgeEncoder`` and ``CloudTail``; both are testable without gRPC.  A
model's default operating point travels with its registry entry (``splitcodec.models.default_operating_point``).
"""

from ..errors import FeatureShapeError
from .cloud import BoxDetection, ClassScore, CloudTail, Prediction
from .edge import EdgeEncoder, EncodedFrame, OnnxHead, PreparedHead

__all__ = ["FeatureShapeError", "EncodedFrame", "OnnxHead", "PreparedHead", "EdgeEncoder", "CloudTail", "Prediction",
           "ClassScore", "BoxDetection"]
