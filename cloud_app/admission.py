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
  * ``check_request``: the request's own fields (``top_k`` at most ``MAX_TOP_K``, an ``original_size`` a
    real image can have) → INVALID_ARGUMENT;
  * ``check_token``: the bearer token, at the start of every call (``cloud_app.interceptors``, before the
    message is read or decompressed) → UNAUTHENTICATED.

``default_max_message_bytes`` sizes the message limit from the served envelopes instead of a fixed 16 MB.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import grpc
import numpy as np

from splitcodec.errors import BitstreamError, ReferenceFrameError, TensorTooLargeError
from splitcodec.errors import FeatureShapeError
from splitcodec.inference import CloudTail
from splitcodec.models import default_operating_point

DEFAULT_MAX_MESSAGE_BYTES = 16 << 20  # a ceiling only: servers size theirs from the envelope (default_max_message_bytes)
MESSAGE_FLOOR_BYTES = 64 << 10
DEFAULT_MAX_LEVELS_FLOOR = 16  # the envelope admits at least this N, and any N a loaded calibration uses
INFLIGHT_RETRY_MS = 50
MAX_TOP_K = 100
MAX_IMAGE_SIDE = 1 << 16


@dataclass
class Limits:
    """Admission limits (see cloud_app.server's docstring); every one has a command-line flag."""

    max_message_bytes: int | None = None  # None: default_max_message_bytes of the served envelopes
    max_levels: int | None = None  # None: the largest N the served models' calibrations use, at least 16
    max_inflight: int = 64
    max_queue_ms: float = 150.0  # expected decoding wait ahead of a request, beyond which it is refused
    decode_workers: int = 2
    stream_idle_s: float = 60.0  # a stream with no frame read, or a response not taken, for this long ends
    max_stream_frames: int = 1_000_000
    # connections and streams (gRPC core; each has a flag)
    max_concurrent_rpcs: int = 256  # server-wide; beyond it new calls get RESOURCE_EXHAUSTED from gRPC
    max_streams_per_connection: int = 100  # HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 advises >= 100)
    connection_idle_s: float = 300.0  # a connection without calls for this long gets GOAWAY
    connection_age_s: float = 3600.0  # then GOAWAY (clients reconnect; the edge client resumes its stream)
    connection_age_grace_s: float = 30.0
    min_ping_interval_s: float = 10.0  # keepalive pings more often than this are strikes; two strikes: GOAWAY
    # the health watch and reflection streams answer without a token: bounded in number and duration
    max_anonymous_streams: int = 16
    anonymous_stream_s: float = 300.0
    # health checks (no token needed) are bounded in number, per connection and per address, apart from
    # max_concurrent_rpcs, and their message arrives within a deadline (cloud_app.interceptors.RequestGate)
    anonymous_message_deadline_s: float = 2.0
    max_anonymous_calls: int = 64
    max_anonymous_calls_per_connection: int = 4
    max_anonymous_calls_per_address: int = 16
    # streams holding a reference frame (temporal coding): one reference each, freed when the stream ends
    max_sequences: int = 256


LIMIT_HELP = {
    "max_message_bytes": "largest message (default: sized from the served envelopes: twice the split's tensor at "
                         "ceil(log2 N) bits per element, 64 KiB to 16 MiB)",
    "max_levels": "largest N accepted (default: the largest N the served models' operating points and --calibration "
                  "files use, at least 16)",
    "max_inflight": "requests decoding or waiting for the tail",
    "max_queue_ms": "refuse a request when more decoding than this is expected ahead of it",
    "decode_workers": "threads that decode bitstreams",
    "stream_idle_s": "close a stream after this long without a frame, or with a response the client does not take",
    "max_stream_frames": "frames on one stream before it must be reopened",
    "max_concurrent_rpcs": "calls in progress on the whole server (beyond: RESOURCE_EXHAUSTED from gRPC)",
    "max_streams_per_connection": "HTTP/2 streams open at once on one connection",
    "connection_idle_s": "close a connection (GOAWAY) after this long without a call",
    "connection_age_s": "close a connection (GOAWAY) after this long; clients reconnect, the edge resumes its stream",
    "connection_age_grace_s": "time calls get to finish after a connection's age is reached",
    "min_ping_interval_s": "keepalive pings more often than this count as strikes (two: GOAWAY)",
    "max_sequences": "streams that may hold a reference frame for temporal coding (one frame each; beyond it, a "
                     "stream's predicted frames are refused with FAILED_PRECONDITION and it must send intra frames)",
    "max_anonymous_streams": "health-watch and reflection streams (no token needed) open at once",
    "anonymous_stream_s": "longest health-watch or reflection stream",
    "anonymous_message_deadline_s": "a health check (no token needed; its message is a few bytes) whose request has "
                                    "not fully arrived this long after the call started ends with DEADLINE_EXCEEDED",
    "max_anonymous_calls": "health checks in progress at once on the whole server (beyond: RESOURCE_EXHAUSTED at "
                           "once, so they never fill --max-concurrent-rpcs)",
    "max_anonymous_calls_per_connection": "health checks in progress at once on one connection",
    "max_anonymous_calls_per_address": "health checks in progress at once from one client address",
}


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
    if isinstance(e, ReferenceFrameError):  # the stream needs an intra frame (the client refreshes)
        return Abort(grpc.StatusCode.FAILED_PRECONDITION, f"{type(e).__name__}: {e}")
    if isinstance(e, (BitstreamError, FeatureShapeError)):
        return Abort(grpc.StatusCode.INVALID_ARGUMENT, f"{type(e).__name__}: {e}")
    return None


def check_size(n_bytes: int, limits: Limits) -> None:
    if n_bytes > limits.max_message_bytes:
        raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"bitstream of {n_bytes} bytes exceeds {limits.max_message_bytes}")


def check_request(req) -> None:
    """The request's own fields, before anything is decoded."""
    if req.top_k > MAX_TOP_K:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"top_k={req.top_k} is more than {MAX_TOP_K}")
    if req.HasField("original_size"):
        w, h = req.original_size.width, req.original_size.height
        if not (0 < w <= MAX_IMAGE_SIDE and 0 < h <= MAX_IMAGE_SIDE):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"original_size {w}x{h} is not an image size (each side 1..{MAX_IMAGE_SIDE})")


def check_head(req, identity) -> None:
    """The frame's head identity against the tail's (``splitcodec.identity``): a frame from another model,
    weights, split, shape or preprocessing is FAILED_PRECONDITION naming both, never a prediction.  A
    request without one (a client that is not edge_app) gets the name and shape checks only."""
    if not req.HasField("head"):
        return
    from splitcodec.errors import SplitCodecError
    from splitcodec.wire import identity_from_message

    from .request_log import clean

    try:
        theirs = identity_from_message(req.head)
    except SplitCodecError as e:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, clean(str(e), 200)) from None
    diff = identity.differences(theirs)
    if diff:
        raise Abort(grpc.StatusCode.FAILED_PRECONDITION,
                    f"the frame's head ({clean(theirs.short(), 120)}) does not match this server's tail "
                    f"({identity.short()}): {clean('; '.join(diff), 300)}; run the same model, weights and split "
                    "on both sides")


def original_size(req) -> tuple[int, int] | None:
    return (req.original_size.width, req.original_size.height) if req.HasField("original_size") else None


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


def default_max_message_bytes(tails: dict, max_levels: int) -> int:
    """A message limit sized from what the served splits can carry: twice the tensor at a fixed-length
    ceil(log2 N) bits per element (the arithmetic coder spends less on any real frame) plus room for the
    header, at least 64 KiB and never above 16 MiB."""
    bits = max(1, (max_levels - 1).bit_length())
    largest = max((int(np.prod(t.feature_shape)) for t in tails.values()), default=0)
    return int(min(DEFAULT_MAX_MESSAGE_BYTES, max(MESSAGE_FLOOR_BYTES, 2 * largest * bits // 8 + 4096)))


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
