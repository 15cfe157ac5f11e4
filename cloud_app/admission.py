"""What the server admits, and the status a refused request gets — decided before any decoding.

Everything here is synchronous and network-free apart from the status codes, so that the mapping from a
request (its size, its header, its token, the server's load) to a gRPC status is tested on its own
(``tests/test_admission.py``) and mutation-tested (``make mutation``).

  * ``check_size``: a bitstream over ``max_message_bytes`` → RESOURCE_EXHAUSTED;
  * ``Envelope.admit``: the header against the split's exact feature shape, a known quantizer kind
    and N ≤ ``max_levels`` → INVALID_ARGUMENT; a tensor larger than the decoder allows →
    RESOURCE_EXHAUSTED (``status_for``: the one mapping from library errors to statuses);
  * ``check_inflight``: ``max_inflight`` requests already in flight → RESOURCE_EXHAUSTED with a
    ``retry-after-ms`` hint;
  * ``check_token``: the bearer token, on every RPC → UNAUTHENTICATED.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import grpc

from splitcodec.errors import BitstreamError, TensorTooLargeError
from splitcodec.errors import FeatureShapeError
from splitcodec.inference import CloudTail
from splitcodec.models import default_operating_point

DEFAULT_MAX_MESSAGE_BYTES = 16 << 20
DEFAULT_MAX_LEVELS_FLOOR = 16  # the envelope admits at least this N, and any N a loaded calibration uses
INFLIGHT_RETRY_MS = 50


@dataclass
class Limits:
    """Admission limits (see cloud_app.server's docstring); every one has a command-line flag."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_levels: int | None = None  # None: the largest N the served models' calibrations use, at least 16
    max_inflight: int = 64
    max_queue_ms: float = 150.0  # expected decoding wait ahead of a request, beyond which it is refused
    decode_workers: int = 2
    stream_idle_s: float = 60.0
    max_stream_frames: int = 1_000_000


class Abort(Exception):
    """A status for the caller.  ``tarpit``: answer only after ``retry_after_ms`` (at most 1 s), so a
    costly client that ignores the hint cannot spend the server's CPU on a flood of refusals."""

    def __init__(self, code: grpc.StatusCode, message: str, retry_after_ms: int | None = None, tarpit: bool = False):
        super().__init__(message)
        self.code, self.message, self.retry_after_ms, self.tarpit = code, message, retry_after_ms, tarpit


def status_for(e: Exception) -> Abort | None:
    """The status a library error on a request's stream maps to (None: not the caller's fault)."""
    if isinstance(e, TensorTooLargeError):
        return Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
    if isinstance(e, (BitstreamError, FeatureShapeError)):
        return Abort(grpc.StatusCode.INVALID_ARGUMENT, f"{type(e).__name__}: {e}")
    return None


def check_size(n_bytes: int, limits: Limits) -> None:
    if n_bytes > limits.max_message_bytes:
        raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"bitstream of {n_bytes} bytes exceeds {limits.max_message_bytes}")


def check_inflight(inflight: int, limits: Limits) -> None:
    if inflight >= limits.max_inflight:
        raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"server busy: {inflight} requests in flight (limit {limits.max_inflight})",
                    retry_after_ms=INFLIGHT_RETRY_MS)


class Envelope:
    """What one served split accepts, checked on the header before decoding."""

    def __init__(self, tail: CloudTail, max_levels: int):
        self.tail, self.max_levels = tail, max_levels

    def admit(self, data: bytes):
        """The header, or ``Abort``."""
        try:
            h = self.tail.check_header(data)
        except (BitstreamError, FeatureShapeError) as e:
            raise status_for(e) from None
        if h.levels > self.max_levels:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"N={h.levels} levels is outside this server's envelope for {self.tail.split.name} "
                        f"{self.tail.split.split} (at most {self.max_levels}; see cloud_app --max-levels)")
        return h


def default_max_levels(tails: dict, specs=()) -> int:
    """The largest N the served models' known operating points and calibration files use (at least 16)."""
    n = DEFAULT_MAX_LEVELS_FLOOR
    for name, _ in tails:
        op = default_operating_point(name)
        n = max(n, op[0] if op else 0)
    for s in specs:
        n = max(n, s.levels or 0)
    return n


def check_token(metadata, token: str | None) -> None:
    """``Abort(UNAUTHENTICATED)`` unless the call carries exactly one ``authorization: Bearer TOKEN``
    header (scheme case-insensitive), compared in constant time."""
    if token is None:
        return
    values = [v for k, v in (metadata or ()) if k.lower() == "authorization"]
    if len(values) != 1:
        raise Abort(grpc.StatusCode.UNAUTHENTICATED,
                    "missing bearer token" if not values else "more than one authorization header")
    scheme, _, given = str(values[0]).partition(" ")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    if not ok:
        raise Abort(grpc.StatusCode.UNAUTHENTICATED, "wrong bearer token")
