"""Protocol-buffer messages of the edge/cloud wire (``proto/splitcodec.proto``).

Messages only (no network code): generated once here so that both apps, which
meet only on the wire, share one definition.  Needs ``protobuf``.
"""

import json

from ..errors import SplitCodecError
from ..identity import DeploymentIdentity
from . import splitcodec_pb2 as pb

__all__ = ["pb", "identity_message", "identity_from_message"]

_MAX_PREPROCESS_JSON = 4096  # a request's preprocessing spec: a few fields


def identity_message(identity: DeploymentIdentity) -> "pb.HeadIdentity":
    """The wire form of a deployment identity (``InferRequest.head``, ``ModelInfo.identity``)."""
    return pb.HeadIdentity(model=identity.model, split=identity.split, weights=identity.weights,
                           weights_fingerprint=identity.weights_fingerprint, feature_shape=list(identity.feature_shape),
                           input_size=identity.input_size, preprocess=json.dumps(identity.preprocess, sort_keys=True))


def identity_from_message(msg: "pb.HeadIdentity") -> DeploymentIdentity:
    """A deployment identity from its wire form (untrusted: ``SplitCodecError`` if it is not one)."""
    if len(msg.preprocess) > _MAX_PREPROCESS_JSON:
        raise SplitCodecError(f"the head identity's preprocessing spec is {len(msg.preprocess)} bytes "
                              f"(at most {_MAX_PREPROCESS_JSON})")
    try:
        preprocess = json.loads(msg.preprocess) if msg.preprocess else {}
    except ValueError:
        raise SplitCodecError("the head identity's preprocessing spec is not JSON") from None
    if not isinstance(preprocess, dict):
        raise SplitCodecError("the head identity's preprocessing spec is not a JSON object")
    return DeploymentIdentity.from_dict({"model": msg.model, "split": msg.split, "weights": msg.weights,
                                         "weights_fingerprint": msg.weights_fingerprint,
                                         "feature_shape": list(msg.feature_shape), "input_size": msg.input_size,
                                         "preprocess": preprocess}, "the request's head identity")
