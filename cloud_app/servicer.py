"""The SplitInference RPCs (thin, as in grpc's asyncio examples): each request goes through admission
(``cloud_app.admission``), decoding (``cloud_app.scheduler``) and the tail (``cloud_app.batcher``), and any
failure becomes that request's status, never another's.

The token is checked before a call's message is read (``cloud_app.interceptors.TokenGate``), not here; a
unary message that does not parse is answered there too (``MessageGate``), one in a stream here.
Every exception past admission is mapped once (``_status``): library errors about the stream to
INVALID_ARGUMENT / RESOURCE_EXHAUSTED (``admission.status_for``), anything else to INTERNAL with the request
id and no internals; the traceback goes to the server's log, rate-limited.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

import splitcodec
from splitcodec.bitstream import FORMAT_VERSION
from splitcodec.inference import Prediction
from splitcodec.wire import identity_message, pb, rpc

from .admission import (Abort, Envelope, Limits, check_head, check_inflight, check_request, check_size,
                        default_max_levels, original_size, status_for)
from .batcher import TailBatcher
from .interceptors import Malformed
from .request_log import RateLimit, RequestLog, clean
from .scheduler import DecodeScheduler

log = logging.getLogger("splitcodec.cloud")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SplitInference"].full_name
_NO_REQUEST = pb.InferRequest()  # a call refused before it had a request (unread, or unparsed) logs an empty one


class SplitInferenceService(rpc.SplitInferenceServicer):
    def __init__(self, batchers: dict, *, limits: Limits | None = None, request_log: RequestLog | None = None):
        self.batchers = batchers  # {(model, split): TailBatcher}
        self.defaults = {}  # model -> its split
        for (name, split) in batchers:
            self.defaults.setdefault(name, split)
        self.limits = limits or Limits()
        levels = self.limits.max_levels or default_max_levels(batchers)
        self.envelopes = {k: Envelope(b.tail, levels) for k, b in batchers.items()}
        self.log = request_log or RequestLog()
        self.inflight = 0
        self.sequences = 0  # streams holding a reference frame (at most limits.max_sequences)
        self.decoder = DecodeScheduler(self.limits.decode_workers, self.limits.max_queue_ms)
        self.health = None
        self.closing = asyncio.Event()  # set on shutdown: streams end after the frame in hand (UNAVAILABLE)
        self.metrics = None  # a cloud_app.metrics.Metrics with --metrics-port
        self._tracebacks = RateLimit(2)

    def start(self) -> None:
        for b in self.batchers.values():
            b.start()

    async def close(self) -> None:
        for b in self.batchers.values():
            await b.close()
        self.decoder.close()

    # -- one request --------------------------------------------------------------------------
    def _batcher(self, model: str, split: str) -> tuple[TailBatcher, Envelope]:
        split = split or self.defaults.get(model, "")
        b = self.batchers.get((model, split))
        if b is None:
            have = ", ".join(f"{m}:{s}" for m, s in self.batchers)
            raise Abort(grpc.StatusCode.NOT_FOUND,
                        f"model {clean(model)!r} split {clean(split)!r} is not served here (serving: {have})")
        return b, self.envelopes[(model, split)]

    async def _infer(self, req, context, sequence=None, *, in_stream: bool = False) -> pb.InferResponse:
        check_size(len(req.bitstream), self.limits)
        check_request(req)
        batcher, envelope = self._batcher(req.model, req.split)
        check_head(req, batcher.tail.identity)
        header = envelope.admit(req.bitstream)
        if in_stream and sequence is None and header.predicted:
            raise Abort(grpc.StatusCode.FAILED_PRECONDITION,
                        f"ReferenceFrameError: this stream holds no reference frame: the server keeps references "
                        f"for at most {self.limits.max_sequences} streams (--max-sequences) and all are taken; "
                        "send intra frames on this stream, or open it again later")
        check_inflight(self.inflight, self.limits)
        peer = context.peer() if context is not None else ""
        self.inflight += 1
        try:
            with self.decoder.admit(peer) as priority:
                with batcher.announce():
                    feats, decode_ms = await self.decoder.run(peer, batcher.tail.decode, req.bitstream, sequence)
                if context is not None and context.cancelled():
                    raise asyncio.CancelledError
                pred, queue_ms = await batcher.submit(feats, original_size(req), req.top_k or 5, priority)
        except (Abort, asyncio.CancelledError):
            raise
        except Exception as e:  # noqa: BLE001 - every failure is this request's status
            raise self._status(req, e) from None
        finally:
            self.inflight -= 1
        return _response(req, pred, decode_ms, queue_ms, feats.size)

    def _status(self, req, e: Exception) -> Abort:
        known = status_for(e)
        if known is not None:
            return known
        if self._tracebacks.allow():
            log.error("internal error serving request %s", clean(req.request_id or "-"), exc_info=e)
        return Abort(grpc.StatusCode.INTERNAL, f"internal error serving request {clean(req.request_id or '-')}")

    async def _abort(self, context, a: Abort):
        if a.tarpit:
            await asyncio.sleep(min(a.retry_after_ms, 1000) / 1e3)
        if a.retry_after_ms is not None:
            context.set_trailing_metadata((("retry-after-ms", str(a.retry_after_ms)),))
        await context.abort(a.code, a.message)

    # -- RPCs ---------------------------------------------------------------------------------
    def _count(self, method: str, status: str, resp=None, started: float | None = None) -> None:
        """The frame's outcome in the metrics (``--metrics-port``)."""
        if self.metrics is None:
            return
        if resp is not None:
            self.metrics.answered(method, resp, time.perf_counter() - started)
        else:
            self.metrics.refused(method, status)

    async def Infer(self, request, context):
        started = time.perf_counter()
        try:
            resp = await self._infer(request, context)
        except Abort as a:
            self.log(request, a.code.name, reason=a.message, peer=context.peer())
            self._count("Infer", a.code.name)
            await self._abort(context, a)
        except asyncio.CancelledError:
            self.log(request, "CANCELLED", peer=context.peer())
            self._count("Infer", "CANCELLED")
            raise
        self.log(request, "OK", resp)
        self._count("Infer", "OK", resp, started)
        return resp

    async def InferStream(self, request_iterator, context):
        # the stream's sequence state: one reference frame, taken with the stream's first frame (a stream that
        # sends nothing holds none) and freed when the stream ends (normally, by error, by idle timeout or
        # cancellation); past max_sequences the stream decodes intra frames only
        held: list = []
        try:
            await self._stream(context, held)
        finally:
            if held:
                self.sequences -= 1

    def _take_sequence(self, held: list):
        """The stream's SequenceDecoder, taken on its first frame if a slot is free (None: intra frames only)."""
        if not held and self.sequences < self.limits.max_sequences:
            held.append(splitcodec.SequenceDecoder())
            self.sequences += 1
        return held[0] if held else None

    def refused(self, code, message: str, context) -> None:
        """Log a call refused before it had a request: the interceptors' ``on_refuse``, a stream's malformed
        message."""
        self.log(_NO_REQUEST, code.name, reason=message, peer=context.peer())
        self._count("call", code.name)

    async def _next_frame(self, context, idle: float):
        """The stream's next message; a stream idle for ``idle`` s is DEADLINE_EXCEEDED, and one waiting when the
        server shuts down is told UNAVAILABLE at once (the client resumes elsewhere), not kept for the grace."""
        if self.closing.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "server shutting down: open the stream again")
        read, closing = asyncio.ensure_future(context.read()), asyncio.ensure_future(self.closing.wait())
        try:
            done, _ = await asyncio.wait({read, closing}, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
        if read in done:
            return read.result()
        read.cancel()
        if self.closing.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "server shutting down: open the stream again")
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"no frame for {idle:g} s: stream closed")

    async def _stream(self, context, held: list):
        frames, idle = 0, self.limits.stream_idle_s
        head = None  # the last head identity the stream sent: frames without one are checked against it
        while True:
            req = await self._next_frame(context, idle)
            if req is grpc.aio.EOF:
                return
            if isinstance(req, Malformed):  # no request id to answer in a frame: the stream's error
                self.refused(grpc.StatusCode.INVALID_ARGUMENT, req.message, context)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, req.message)
            frames += 1
            if req.HasField("head"):
                head = req.head
            elif head is not None:
                req.head.CopyFrom(head)
            if frames > self.limits.max_stream_frames:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"more than {self.limits.max_stream_frames} frames on one stream: open a new one")
            sequence = self._take_sequence(held) if frames == 1 else (held[0] if held else None)
            resp = await self._stream_frame(req, context, sequence)
            # a client that stops reading (zero window) must not hold the handler: the write is given up after
            # ``idle``.  gRPC cannot send the status past the blocked write (the abort fails in core and the
            # library logs one line), but the handler ends all the same, so nothing more is read from the
            # stream and its sequence state is freed.  The HTTP/2 stream and its call slot stay core's until
            # the connection closes (--connection-age-s at most): grpc.aio has no server-side cancel.
            try:
                await asyncio.wait_for(context.write(resp), timeout=idle)
            except asyncio.TimeoutError:
                reason = f"response not taken for {idle:g} s: stream released"
                self.log(req, "DEADLINE_EXCEEDED", reason=reason, peer=context.peer())
                self._count("InferStream", "DEADLINE_EXCEEDED")
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, reason)

    async def _stream_frame(self, req, context, sequence) -> pb.InferResponse:
        """One frame of a stream: its answer, or its error in the response (the stream goes on).  A frame
        that fails leaves the sequence's reference where it was: the next predicted frame names the failed
        one and is refused too (FAILED_PRECONDITION), until the client sends an intra frame."""
        started = time.perf_counter()
        try:
            resp = await self._infer(req, context, sequence, in_stream=True)
            self.log(req, "OK", resp)
            self._count("InferStream", "OK", resp, started)
            return resp
        except Abort as a:
            self.log(req, a.code.name, reason=a.message, peer=context.peer())
            self._count("InferStream", a.code.name)
            if a.tarpit:
                await asyncio.sleep(min(a.retry_after_ms, 1000) / 1e3)
            return pb.InferResponse(request_id=req.request_id, error=pb.FrameError(code=a.code.name, message=a.message))

    async def ListModels(self, request, context):
        out = pb.ListModelsResponse(server_version=splitcodec.__version__, bitstream_format_version=FORMAT_VERSION)
        for (name, split), b in self.batchers.items():
            s = b.tail.split
            out.models.append(pb.ModelInfo(name=name, task=b.tail.task, default_split=split, input_size=s.input_size,
                                           splits=[pb.SplitInfo(name=split, shape=list(s.feature_shape))],
                                           identity=identity_message(b.tail.identity)))
        return out


def _response(req, pred: Prediction, decode_ms: float, queue_ms: float, elements: int) -> pb.InferResponse:
    r = pb.InferResponse(request_id=req.request_id, elements=elements, bitstream_bytes=len(req.bitstream),
                         timings=pb.ServerTimings(decode_ms=decode_ms, tail_ms=pred.tail_ms, queue_ms=queue_ms,
                                                  batch_size=pred.batch_size))
    r.classes.extend(pb.ClassScore(index=c.index, name=c.name, score=c.score) for c in pred.classes)
    r.detections.extend(pb.Detection(x0=d.box[0], y0=d.box[1], x1=d.box[2], y1=d.box[3], category_id=d.category_id,
                                     name=d.name, score=d.score) for d in pred.detections)
    return r
