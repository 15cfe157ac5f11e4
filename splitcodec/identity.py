"""The deployment identity: the facts that the edge's head, the cloud's tail and a quantizer file must agree on.

A split deployment gives a right answer only when both halves come from the same network with the same
weights, cut at the same place, fed the same preprocessing — and when the quantizer was designed for that
split's activations.  Each of those facts used to travel on its own; this module puts them in one record:

==========================  =====================================================================
``model``                   the model's name (``efficientnet_lite0``, ``vgg16``, ...)
``weights``                 how the weights were named when loaded: ``DEFAULT``, ``random``, an enum
                            name, a file name (informative: the fingerprint is what is compared)
``weights_fingerprint``     SHA-256 (first 16 hex digits) of every parameter and buffer actually loaded
``split``                   the cut
``feature_shape``           the split tensor's shape (C, H, W) at ``input_size``
``input_size``              the model's input side
``preprocess``              the preprocessing spec (``splitcodec.preprocessing``)
==========================  =====================================================================

``DeploymentIdentity.check(other)`` compares every field and raises :class:`IdentityMismatchError` with
one line naming what differs; each consumer (edge head, cloud tail, quantizer files, studies, the demo)
calls it with the flag that fixes the mismatch.  The record is JSON (``to_dict``/``from_dict``): saved in
quantizer files, in an exported head's description, and (as ``HeadIdentity``) in every request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import IdentityMismatchError, SplitCodecError

__all__ = ["DeploymentIdentity", "IdentityMismatchError", "weights_fingerprint", "file_sha256", "file_identity",
           "RANDOM_WEIGHTS", "DEFAULT_WEIGHTS", "random_weights_seed"]

RANDOM_WEIGHTS = "random"  # the one explicit word for untrained weights
DEFAULT_WEIGHTS = "DEFAULT"  # the model's trained weights (bundled, cached, or refused with the fix)
random_weights_seed = 0  # random weights are drawn from this seed: edge and cloud get the same ones
_FINGERPRINT_HEX = 16


def _digest(h) -> str:
    return h.hexdigest()[:_FINGERPRINT_HEX]


def weights_fingerprint(module) -> str:
    """SHA-256 of a torch module's state dict (names, dtypes, shapes and bytes, in name order), the first
    16 hex digits: the same on every machine for the same parameters."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return _digest(h)


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes (an exported ONNX head): checked against the value written beside it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class DeploymentIdentity:
    model: str
    split: str
    feature_shape: tuple[int, ...]
    weights: str
    weights_fingerprint: str
    input_size: int
    preprocess: dict = field(default_factory=dict, hash=False)

    # fields compared by ``check``, in the order a mismatch is reported (``weights`` is shown, not compared)
    COMPARED = ("model", "split", "feature_shape", "weights_fingerprint", "input_size", "preprocess")

    @property
    def random_weights(self) -> bool:
        return self.weights == RANDOM_WEIGHTS

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "split": self.split, "feature_shape": list(self.feature_shape),
                "weights": self.weights, "weights_fingerprint": self.weights_fingerprint,
                "input_size": self.input_size, "preprocess": dict(self.preprocess)}

    @classmethod
    def from_dict(cls, d, source: str = "identity") -> "DeploymentIdentity":
        """Parse (and validate) a ``to_dict`` record; a ``SplitCodecError`` naming ``source`` otherwise."""
        if not isinstance(d, dict):
            raise SplitCodecError(f"{source}: the deployment identity is not an object")
        try:
            shape = tuple(int(v) for v in d["feature_shape"])
            out = cls(str(d["model"]), str(d["split"]), shape, str(d["weights"]), str(d["weights_fingerprint"]),
                      int(d["input_size"]), dict(d.get("preprocess") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise SplitCodecError(f"{source}: incomplete deployment identity ({type(e).__name__}: {e})") from None
        if not out.model or not out.split or not out.weights_fingerprint or not shape or min(shape) < 1:
            raise SplitCodecError(f"{source}: incomplete deployment identity (empty model, split, fingerprint "
                                  "or shape)")
        return out

    def short(self) -> str:
        """``model:split (C, H, W) weights NAME@FINGERPRINT``: how messages name an identity."""
        return (f"{self.model}:{self.split} {tuple(self.feature_shape)} "
                f"weights {self.weights}@{self.weights_fingerprint[:8]}")

    def differences(self, other: "DeploymentIdentity") -> list[str]:
        """What differs, one short phrase per field (``split blocks.13 vs blocks.11.expand``)."""
        out = []
        for name in self.COMPARED:
            a, b = getattr(self, name), getattr(other, name)
            if name == "feature_shape":
                a, b = tuple(a), tuple(b)
            if a != b:
                if name == "weights_fingerprint":
                    out.append(f"weights {self.weights}@{a[:8]} vs {other.weights}@{b[:8]}")
                elif name == "preprocess":
                    out.append(f"preprocessing {json.dumps(a, sort_keys=True)} vs {json.dumps(b, sort_keys=True)}")
                else:
                    out.append(f"{name.replace('_', ' ')} {a} vs {b}")
        return out

    def check(self, other: "DeploymentIdentity", *, mine: str, theirs: str, fix: str = "") -> None:
        """Raise :class:`IdentityMismatchError` (one line: what differs, and ``fix``) unless ``other``
        describes the same deployment as ``self``."""
        diff = self.differences(other)
        if diff:
            raise IdentityMismatchError(f"{theirs} does not match {mine}: {'; '.join(diff)}"
                                        + (f" ({fix})" if fix else ""))


def file_identity(doc: dict, path) -> DeploymentIdentity | None:
    """The identity a JSON document (quantizer file, head description) records under ``"identity"``;
    None if it records none."""
    d = doc.get("identity")
    return None if d is None else DeploymentIdentity.from_dict(d, str(Path(path)))
