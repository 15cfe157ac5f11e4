"""Quantizer files: a quantizer and its encoder configuration, saved with what they were fitted on.

A JSON document, versioned independently of the package::

    {"format": "splitcodec-quantizer", "version": 1, "kind": "uniform" | "table",
     "levels": N, "clip": [c_min, c_max], "reconstruction": [...], "thresholds": [...],
     "context_model": ..., "rdo_lambda": ..., ... (EncoderConfig.to_dict(): the options that differ from the defaults),
     "model": ..., "split": ..., "fitted_on": {...}, "metrics": {...}}

``reconstruction``/``thresholds`` are stored for table quantizers (ECQ,
Lloyd-Max); a uniform quantizer is rebuilt from ``clip`` and ``levels``.
:func:`load_quantizer_file` is the one reader: the apps, ``FeatureCodec.from_file``
and the studies all use it, so a file means the same encoder everywhere.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

from .encoder_config import EncoderConfig
from .errors import QuantizerError
from .quantization import Quantizer, ScalarQuantizer, UniformQuantizer

__all__ = ["QUANTIZER_FILE_VERSION", "QuantizerFile", "save_quantizer", "load_quantizer_file"]

QUANTIZER_FILE_VERSION = 1
_FORMAT = "splitcodec-quantizer"


class QuantizerFile(NamedTuple):
    quantizer: Quantizer
    encoder: EncoderConfig
    doc: dict  # the whole document (model, split, fitted_on, metrics, ...)


def save_quantizer(path, quantizer: Quantizer, encoder: EncoderConfig | None = None, **meta) -> Path:
    """Write ``quantizer``, its encoder configuration and free-form metadata (model, split, fitted_on,
    metrics...).  Encoder options may also be given as keywords (``rdo_lambda=0.2``): they are put over
    ``encoder`` and validated together, so a file never holds a combination the encoder rejects."""
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
    if doc.get("version") != QUANTIZER_FILE_VERSION:
        raise QuantizerError(f"{path}: quantizer file version {doc.get('version')} is not supported "
                             f"(this splitcodec reads version {QUANTIZER_FILE_VERSION})")
    try:
        encoder = EncoderConfig.from_dict(doc)
    except QuantizerError as e:
        raise QuantizerError(f"{path}: {e}") from None
    return QuantizerFile(_quantizer(path, doc), encoder, doc)


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
