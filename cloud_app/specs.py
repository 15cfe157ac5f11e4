"""Which models a server loads: ``ModelSpec`` (``name[:split][=weights]`` on the command line, or the model
and split a quantizer file was calibrated for) and ``load_tails`` (the warmed-up ``CloudTail`` of each)."""

from __future__ import annotations

from dataclasses import dataclass

from splitcodec import models
from splitcodec.inference import CloudTail


@dataclass(frozen=True)
class ModelSpec:
    """One model the server loads: ``name[:split][=weights]`` on the command line."""

    name: str
    split: str = "paper"
    weights: str | None = "DEFAULT"
    levels: int | None = None  # N of a calibration file for this split (widens the envelope)

    @classmethod
    def from_calibration(cls, path) -> "ModelSpec":
        """The model and split a quantizer file was calibrated for (its bundled weights, if any)."""
        from splitcodec.quantizer_file import load_quantizer_file

        q, _, doc = load_quantizer_file(path)
        if not doc.get("model") or not doc.get("split"):
            raise ValueError(f"{path} names no model and split to serve")
        spec = cls.parse(f"{doc['model']}:{doc['split']}")
        return cls(spec.name, spec.split, spec.weights, q.levels)

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        head, _, weights = text.partition("=")
        name, _, split = head.partition(":")
        default = "DEFAULT" if name == "efficientnet_lite0" else None
        return cls(name.strip(), split.strip() or "paper", weights.strip() or default)


def load_tails(specs, device: str = "cpu") -> dict:
    """{(name, split): CloudTail} for each ``ModelSpec``; errors name the model."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tails = {}
    for spec in specs:
        split = models.split_model(spec.name, spec.split, weights=spec.weights)
        tail = CloudTail(split, device=device)
        tail.warmup()
        tails[(spec.name, split.split)] = tail
    return tails
