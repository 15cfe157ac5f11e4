"""Which models a server loads: ``ModelSpec`` (``name[:split][=weights]`` on the command line, or the deployment a
quantizer file was measured on) and ``load_tails`` (the warmed-up ``CloudTail`` of each).

Weights default to the model's trained ones (``DEFAULT``); random weights only by the word ``random``.  A
``--calibration`` file's deployment identity is checked against the tail actually loaded."""

from __future__ import annotations

from dataclasses import dataclass

from splitcodec import models
from splitcodec.inference import CloudTail


@dataclass(frozen=True)
class ModelSpec:
    """One model the server loads: ``name[:split][=weights]`` on the command line."""

    name: str
    split: str = "paper"
    weights: str = "DEFAULT"
    levels: int | None = None  # N of a calibration file for this split (widens the envelope)
    calibration: str | None = None  # the quantizer file whose identity the tail must have

    @classmethod
    def from_calibration(cls, text: str) -> "ModelSpec":
        """``FILE[=WEIGHTS]``: the model and split a quantizer file was measured on, with the weights it names
        (``DEFAULT``, ``random``, an enum name) or ``WEIGHTS`` (a path, when the file was measured on a weights
        file)."""
        from splitcodec.errors import IdentityMismatchError
        from splitcodec.quantizer_file import load_quantizer_file

        path, _, weights = str(text).partition("=")
        qf = load_quantizer_file(path)
        q, ident = qf.quantizer, qf.identity
        if ident is None:
            raise IdentityMismatchError(
                f"{path} records no deployment identity (model, weights, split) to serve: re-create it with "
                "`splitcodec-eval explore --save` or `calibrate --save`")
        if not weights:
            if "." in ident.weights or "/" in ident.weights:
                raise ValueError(f"{path} was measured with the weights file {ident.weights}: pass --calibration "
                                 f"{path}=PATH_TO_{ident.weights}")
            weights = ident.weights
        return cls(ident.model, ident.split, weights, q.levels, path)

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        head, _, weights = text.partition("=")
        name, _, split = head.partition(":")
        return cls(name.strip(), split.strip() or "paper", weights.strip() or "DEFAULT")


def load_tails(specs, device: str = "cpu") -> dict:
    """{(name, split): CloudTail} for each ``ModelSpec``; errors name the model.  A spec from a calibration
    file must load a tail with the file's identity (``IdentityMismatchError`` otherwise)."""
    import torch

    from splitcodec.quantizer_file import check_file_identity, load_quantizer_file

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tails = {}
    for spec in specs:
        split = models.split_model(spec.name, spec.split, weights=spec.weights)
        if spec.calibration:
            check_file_identity(load_quantizer_file(spec.calibration), split.identity, mine="the served tail",
                                fix="serve the weights the file was measured with: --calibration FILE=WEIGHTS")
        tail = CloudTail(split, device=device)
        tail.warmup()
        tails[(spec.name, split.split)] = tail
    return tails
