"""Quantizer files: a quantizer and its encoder configuration, saved with what they were fitted on.

A JSON document, versioned independently of the package::

    {"format": "splitcodec-quantizer", "version": 1, "kind": "uniform" | "table",
     "levels": N, "clip": [c_min, c_max], "reconstruction": [...], "thresholds": [...],
     "context_model": ..., "rdo_lambda": ..., ... (EncoderConfig.to_dict(): the options that differ from the defaults),
     "model": ..., "split": ..., "identity": {...}, "fitted_on": {...}, "metrics": {...}}

``identity`` (version 2) is the deployment identity of the head the quantizer was measured on
(``splitcodec.identity``: model, weights and their fingerprint, split, feature shape, input size,
preprocessing); ``fitted_on``/``metrics`` say what it was measured on (dataset, samples) and what it
achieved.  A consumer that applies the file to a head or tail checks it with :func:`check_file_identity`,
which refuses a file for another deployment, or one that records none, with one line naming the fix.
``reconstruction``/``thresholds`` are stored for table quantizers (ECQ,
Lloyd-Max); a uniform quantizer is rebuilt from ``clip`` and ``levels``.
:func:`load_quantizer_file` is the one reader: the apps, ``FeatureCodec.from_file``
and the studies all use it, so a file means the same encoder everywhere.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from dataclasses import dataclass

from .encoder_config import EncoderConfig
from .errors import IdentityMismatchError, QuantizerError, SplitCodecError
from .identity import DeploymentIdentity, file_identity
from .quantization import Quantizer, ScalarQuantizer, UniformQuantizer

__all__ = ["QUANTIZER_FILE_VERSION", "QuantizerFile", "save_quantizer", "load_quantizer_file", "check_file_identity"]

QUANTIZER_FILE_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # version 1: no identity (refused by check_file_identity)
_FORMAT = "splitcodec-quantizer"


@dataclass(frozen=True)
class QuantizerFile:
    """A read quantizer file; unpacks as ``quantizer, encoder, doc``."""

    quantizer: Quantizer
    encoder: EncoderConfig
    doc: dict  # the whole document (model, split, identity, fitted_on, metrics, ...)
    identity: DeploymentIdentity | None = None  # the head it was measured on (None: the file records none)
    path: Path | None = None

    def __iter__(self):
        return iter((self.quantizer, self.encoder, self.doc))


def save_quantizer(path, quantizer: Quantizer, encoder: EncoderConfig | None = None, *,
                   identity: DeploymentIdentity | None = None, **meta) -> Path:
    """Write ``quantizer``, its encoder configuration, the deployment ``identity`` of the head it was measured
    on (its model and split are written too) and free-form metadata (fitted_on, metrics...).  Encoder
    options may also be given as keywords (``rdo_lambda=0.2``): they are put over ``encoder`` and validated
    together, so a file never holds a combination the encoder rejects."""
    if identity is not None:
        for key in ("model", "split"):
            if meta.get(key, getattr(identity, key)) != getattr(identity, key):
                raise ValueError(f"{key}={meta[key]!r} differs from the identity's {getattr(identity, key)!r}")
        meta.update(model=identity.model, split=identity.split, identity=identity.to_dict())
    options = {k: meta.pop(k) for k in EncoderConfig.option_names() if k in meta}
    config = dataclasses.replace(encoder or EncoderConfig(), **options)
    doc = {"format": _FORMAT, "version": QUANTIZER_FILE_VERSION, "kind": quantizer.kind,
           "levels": quantizer.levels, "clip": [quantizer.c_min, quantizer.c_max]}
    if not isinstance(quantizer, UniformQuantizer):
        doc["reconstruction"] = [float(v) for v in quantizer.reconstruction]
        doc["thresholds"] = [float(v) for v in quantizer.thresholds]
    doc.update(config.to_dict())
    doc.update(meta)
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def load_quantizer_file(path) -> QuantizerFile:
    """Read a quantizer file: its quantizer, its encoder configuration (validated) and the whole document."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"quantizer file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QuantizerError(f"{path} is not a quantizer file: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise QuantizerError(f"{path} is not a splitcodec quantizer file")
    if doc.get("version") not in _READABLE_VERSIONS:
        raise QuantizerError(f"{path}: quantizer file version {doc.get('version')} is not supported "
                             f"(this splitcodec reads versions {', '.join(map(str, _READABLE_VERSIONS))})")
    try:
        encoder = EncoderConfig.from_dict(doc)
        identity = file_identity(doc, path)
    except SplitCodecError as e:
        raise QuantizerError(str(e) if str(path) in str(e) else f"{path}: {e}") from None
    return QuantizerFile(_quantizer(path, doc), encoder, doc, identity, path)


def check_file_identity(qf: QuantizerFile, identity: DeploymentIdentity, *, mine: str = "this head",
                        fix: str = "") -> None:
    """Refuse (``IdentityMismatchError``, one line) a quantizer file measured on another deployment than
    ``identity``, or one that records no identity at all; ``fix`` names the flag that mends it."""
    name = qf.path or "the quantizer file"
    if qf.identity is None:
        raise IdentityMismatchError(
            f"{name} records no deployment identity (model, weights, split), so it cannot be checked against "
            f"{mine} ({identity.short()}): re-create it with `splitcodec-eval explore --save` or `calibrate "
            "--save`, or save it with save_quantizer(..., identity=split.identity)")
    identity.check(qf.identity, mine=f"{mine} ({identity.short()})", theirs=f"{name} ({qf.identity.short()})",
                   fix=fix)


def _quantizer(path: Path, doc: dict) -> Quantizer:
    try:
        lo, hi = doc["clip"]
        if doc["kind"] == "uniform":
            return UniformQuantizer(lo, hi, doc["levels"])
        if doc["kind"] == "table":
            return ScalarQuantizer(doc["reconstruction"], doc["thresholds"], lo, hi)
    except (KeyError, TypeError, ValueError) as e:
        raise QuantizerError(f"{path}: incomplete quantizer description ({e})") from None
    raise QuantizerError(f"{path}: unknown quantizer kind {doc.get('kind')!r}")
