"""Every exception splitcodec raises on purpose.

``SplitCodecError`` is the base.  Anything wrong with a bitstream (which is
untrusted input) is a ``BitstreamError``, which is also a ``ValueError`` so
that generic callers that catch ``ValueError`` keep working.  Each distinct
failure has its own subclass so that a server can log *what* was wrong and a
test can assert on it.
"""

from __future__ import annotations

__all__ = [
    "SplitCodecError",
    "QuantizerError",
    "BitstreamError",
    "BadMagicError",
    "UnsupportedVersionError",
    "UnknownIdError",
    "InvalidHeaderError",
    "TensorTooLargeError",
    "TruncatedStreamError",
    "TruncatedPayloadError",
    "TrailingBytesError",
    "ChecksumError",
    "CorruptPayloadError",
    "ReferenceFrameError",
    "FeatureShapeError",
    "IdentityMismatchError",
    "WeightsUnavailableError",
]


class SplitCodecError(Exception):
    """Base class of all splitcodec errors."""


class QuantizerError(SplitCodecError, ValueError):
    """A quantizer was given parameters or data it cannot work with."""


class BitstreamError(SplitCodecError, ValueError):
    """A bitstream is malformed, corrupted or exceeds a configured limit."""


class BadMagicError(BitstreamError):
    """The stream does not start with the splitcodec magic byte."""


class UnsupportedVersionError(BitstreamError):
    """The stream's format version is not one this decoder reads."""


class UnknownIdError(BitstreamError):
    """A context-model id, quantizer kind or other enumerated field is unknown."""


class InvalidHeaderError(BitstreamError):
    """A header field is out of its valid range (N, shape, clip range, levels...)."""


class TensorTooLargeError(BitstreamError):
    """The declared shape holds more elements than the decoder allows."""


class TruncatedStreamError(BitstreamError):
    """The stream ends inside the header."""


class TruncatedPayloadError(BitstreamError):
    """The arithmetic decoder needed bytes beyond the end of the payload."""


class TrailingBytesError(BitstreamError):
    """Bytes remain after the arithmetic decoder consumed the whole payload."""


class ChecksumError(BitstreamError):
    """The CRC-32 stored in the header does not match the stream."""


class CorruptPayloadError(BitstreamError):
    """The payload is inconsistent with any valid encoding."""


class ReferenceFrameError(BitstreamError):
    """A predicted frame cannot be decoded against the reference this decoder holds: there is none, or it
    is another sequence's, an earlier or later frame, or not the frame the encoder predicted from (its CRC
    differs), or its quantizer or shape differ.  The decoder's state is unchanged; the sender must refresh
    (send an intra frame)."""


class FeatureShapeError(SplitCodecError, ValueError):
    """A stream's tensor does not have the shape the model's split produces."""


class IdentityMismatchError(SplitCodecError, ValueError):
    """Two halves of a deployment disagree: a head, a tail or a quantizer file describes another model,
    weights, split, feature shape or preprocessing (``splitcodec.identity``)."""


class WeightsUnavailableError(SplitCodecError, FileNotFoundError):
    """A model's trained weights cannot be had here (not bundled, not cached, no file given).  Random
    weights are only ever used when asked for by name (``weights="random"``)."""
