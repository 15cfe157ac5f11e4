"""How the encoder chooses and codes indices: one frozen, validated description.

An :class:`EncoderConfig` is what :class:`~splitcodec.FeatureCodec`, the coder entry point, quantizer files,
the RD search, the studies and the edge app pass around and save.  None of it reaches the stream: any
decoder reads what any configuration writes (the context model is the one field written in the header).

>>> from splitcodec import EncoderConfig
>>> c = EncoderConfig(rdo_lambda=0.2, error_feedback=0.5, error_diffusion="plane")
>>> c.to_dict()
{'rdo_lambda': 0.2, 'error_feedback': 0.5, 'error_diffusion': 'plane'}
>>> EncoderConfig.from_dict(c.to_dict()) == c
True
>>> c.merged(rdo_lambda=0.0, error_feedback=0.0)     # the options that need them fall back to their defaults
EncoderConfig()

Options that refine another (``requires`` in a field's metadata) are rejected when given without it
(``EncoderConfig(rdo_lookahead=True)`` raises); :meth:`EncoderConfig.merged` — the one defaulting rule, used
for a command line over a quantizer file — resets such an option to its default when the override turns its
prerequisite off and does not name the option itself.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from .entropy.coder import DIFFUSIONS
from .entropy.contexts import CONTEXT_MODEL_NAMES, INTRA_MODELS, context_model_id
from .errors import QuantizerError

__all__ = ["EncoderConfig", "DIFFUSIONS"]


def _option(default, help: str, requires: str | None = None, choices=None, cli_type=None):
    """A field of the configuration: ``help`` and ``choices`` describe it to command lines (edge_app builds
    its flags from them), ``requires`` names the option it refines (it needs that one non-zero)."""
    return field(default=default, metadata={"help": help, "requires": requires, "choices": choices,
                                            "type": cli_type})


@dataclass(frozen=True)
class EncoderConfig:
    """Everything the encoder does beyond the quantizer (see the module docstring)."""

    context_model: str = _option(
        "spatial", "context model of the entropy coder (written in the stream header)",
        choices=INTRA_MODELS, cli_type=str)
    rdo_lambda: float = _option(
        0.0, "rate-distortion optimised encoding: each index chosen to minimise (x - x̂)²/Δ² + λ·bits "
             "(λ >= 0, dimensionless; 0 = plain quantization); any decoder reads the streams", cli_type=float)
    channel_weights: tuple | None = _option(
        None, "per-channel weights of the RDO distortion (splitcodec.sensitivity; one positive number per "
              "channel, the axis before the plane)", requires="rdo_lambda")
    error_feedback: float = _option(
        0.0, "diffuse each element's quantization error into the next one, 0..1; keeps channel means, which "
             "the network behind the split notices more than element-wise error", cli_type=float)
    error_diffusion: str = _option(
        "row", "where error feedback goes: the next element in the row, or half to the right and half below "
               "('plane': less low-frequency error, fewer bits for the same fidelity)",
        requires="error_feedback", choices=DIFFUSIONS, cli_type=str)
    rdo_lookahead: bool = _option(
        False, "RDO prices each candidate with the right neighbour's best answer to it (fewer bits below "
               "~0.5 bit/element, slower)", requires="rdo_lambda", cli_type=bool)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen: normalise in place once)
        set_("context_model", CONTEXT_MODEL_NAMES[context_model_id(self.context_model)])
        if self.context_model not in INTRA_MODELS:
            raise QuantizerError(f"context model {self.context_model!r} is not one to configure: a sequence's "
                                 f"predicted frames use it (splitcodec.SequenceEncoder); choose one of {INTRA_MODELS}")
        set_("rdo_lambda", _number(self.rdo_lambda, "rdo_lambda", "a finite number >= 0", 0.0, math.inf))
        set_("error_feedback", _number(self.error_feedback, "error_feedback", "a number in [0, 1]", 0.0, 1.0))
        if self.error_diffusion not in DIFFUSIONS:
            raise QuantizerError(f"error_diffusion must be one of {DIFFUSIONS}, got {self.error_diffusion!r}")
        if not isinstance(self.rdo_lookahead, (bool, np.bool_)):
            raise QuantizerError(f"rdo_lookahead must be True or False, got {self.rdo_lookahead!r}")
        set_("rdo_lookahead", bool(self.rdo_lookahead))
        if self.channel_weights is not None:
            set_("channel_weights", _weights(self.channel_weights))
        for f in dataclasses.fields(self):
            need = f.metadata["requires"]
            if need and getattr(self, f.name) != f.default and not getattr(self, need):
                raise QuantizerError(f"{f.name} refines {_PURPOSE[need]}: it needs {need} > 0")

    @property
    def context_model_id(self) -> int:
        """The context model's stable id (the header field)."""
        return context_model_id(self.context_model)

    @property
    def weights(self) -> np.ndarray | None:
        """The channel weights as float64, or None."""
        return None if self.channel_weights is None else np.array(self.channel_weights, dtype=np.float64)

    @property
    def rdo(self) -> bool:
        """Whether the encoder kernel chooses the indices (RDO or error feedback) rather than the quantizer."""
        return self.rdo_lambda > 0 or self.error_feedback > 0

    def to_dict(self) -> dict:
        """The options that differ from the defaults, JSON-ready (lists, not tuples)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v != f.default:
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, doc: dict) -> "EncoderConfig":
        """The configuration a dict describes (``to_dict``'s output, or a quantizer file: other keys are ignored,
        a missing or null key takes its default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names and v is not None})

    def merged(self, **overrides) -> "EncoderConfig":
        """This configuration with ``overrides`` (None = keep), by the one defaulting rule: an option whose
        prerequisite the overrides turn off goes back to its default unless the overrides name it too (then the
        combination is rejected, as in the constructor)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - set(self.option_names())
        if unknown:
            raise QuantizerError(f"unknown encoder option(s) {sorted(unknown)}; known: {self.option_names()}")
        values = {**dataclasses.asdict(self), **given}
        for f in dataclasses.fields(self):
            need = f.metadata["requires"]
            if need and need in given and not values[need] and f.name not in given:
                values[f.name] = f.default
        return EncoderConfig(**values)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def options(cls):
        """(name, default, metadata) of every option, in order: what a command line builds its flags from."""
        return [(f.name, f.default, f.metadata) for f in dataclasses.fields(cls)]

    def repr_parts(self) -> list[str]:
        """``name=value`` for each option that differs from its default (weights as a count)."""
        return [f"{k}=<{len(v)} values>" if isinstance(v, list) else f"{k}={v!r}" for k, v in self.to_dict().items()]

    def __repr__(self) -> str:
        return f"EncoderConfig({', '.join(self.repr_parts())})"


_PURPOSE = {"rdo_lambda": "rate-distortion optimised encoding", "error_feedback": "error feedback"}


def _number(value, name: str, what: str, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise QuantizerError(f"{name} must be {what}, got {value!r}") from None
    if not (lo <= v <= hi and math.isfinite(v)):
        raise QuantizerError(f"{name} must be {what}, got {value!r}")
    return v


def _weights(weights) -> tuple:
    try:
        w = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise QuantizerError("channel_weights must be a 1-D sequence of positive numbers") from None
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w) & (w > 0)):
        raise QuantizerError(f"channel_weights must be a non-empty 1-D sequence of finite numbers > 0, "
                             f"got {weights!r:.80}")
    return tuple(float(v) for v in w)
