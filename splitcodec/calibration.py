"""Quantizer files: a calibrated quantizer saved with what it was fitted on.

A JSON document, versioned independently of the package::

    {"format": "splitcodec-quantizer", "version": 1, "kind": "uniform" | "table",
     "levels": N, "clip": [c_min, c_max], "reconstruction": [...], "thresholds": [...],
     "model": ..., "split": ..., "fitted_on": {...}, "metrics": {...}}

``reconstruction``/``thresholds`` are stored for table quantizers (ECQ,
Lloyd-Max); a uniform quantizer is rebuilt from ``clip`` and ``levels``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import QuantizerError
from .quantization import Quantizer, ScalarQuantizer, UniformQuantizer

__all__ = ["QUANTIZER_FILE_VERSION", "save_quantizer", "load_quantizer"]

QUANTIZER_FILE_VERSION = 1
_FORMAT = "splitcodec-quantizer"


def save_quantizer(path, quantizer: Quantizer, **meta) -> Path:
    """Write ``quantizer`` and free-form metadata (model, split, fitted_on, metrics...)."""
    doc = {"format": _FORMAT, "version": QUANTIZER_FILE_VERSION, "kind": quantizer.kind,
           "levels": quantizer.levels, "clip": [quantizer.c_min, quantizer.c_max]}
    if not isinstance(quantizer, UniformQuantizer):
        doc["reconstruction"] = [float(v) for v in quantizer.reconstruction]
        doc["thresholds"] = [float(v) for v in quantizer.thresholds]
    doc.update(meta)
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def load_quantizer(path) -> tuple[Quantizer, dict]:
    """Read a quantizer file; returns the quantizer and the whole document."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"quantizer file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise QuantizerError(f"{path} is not a quantizer file: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise QuantizerError(f"{path} is not a splitcodec quantizer file")
    if doc.get("version") != QUANTIZER_FILE_VERSION:
        raise QuantizerError(f"{path}: quantizer file version {doc.get('version')} is not supported "
                             f"(this splitcodec reads version {QUANTIZER_FILE_VERSION})")
    try:
        lo, hi = doc["clip"]
        if doc["kind"] == "uniform":
            return UniformQuantizer(lo, hi, doc["levels"]), doc
        if doc["kind"] == "table":
            return ScalarQuantizer(doc["reconstruction"], doc["thresholds"], lo, hi), doc
    except (KeyError, TypeError, ValueError) as e:
        raise QuantizerError(f"{path}: incomplete quantizer description ({e})") from None
    raise QuantizerError(f"{path}: unknown quantizer kind {doc.get('kind')!r}")
