"""The cloud server: an asyncio gRPC core (``grpc.aio``) over the library's synchronous ``CloudTail``.

An open or idle call costs a coroutine, not a thread: decoding runs in a bounded thread pool, each
model's tail in a thread of its own, and health checks, ``ListModels`` and reflection are answered on
the event loop, never behind inference.

Admission control, before any decoding:
  * the header is checked against the model's operating envelope: the split's exact feature shape,
    a known quantizer kind, N at most ``max_levels``;
  * the work a stream can cause is bounded by the envelope (elements × (N − 1) bins, and 2562 bins per
    payload byte, docs/bitstream.md §3); decodes run cheapest-expected-first (``DecodeScheduler``: each
    connection's recent decode time predicts its next), so ordinary clients do not queue behind
    costly ones; a request is refused at once (RESOURCE_EXHAUSTED with a ``retry-after-ms`` hint) when
    ``max_inflight`` requests are in flight or the decoding expected ahead of it exceeds ``max_queue_ms``;
  * a cancelled call or one past its deadline is not decoded or run if it has not started yet;
  * a stream is closed after ``stream_idle_s`` without a frame, or after ``max_stream_frames``.

The admission checks and the status each refusal gets live in ``cloud_app.admission``; batching in
``cloud_app.batcher``.

``create_server(address, ...) -> (handle, port, service)`` starts a server on an event loop of its own
in a background thread (for tests and embedding); ``shutdown(handle, service, grace)`` stops it.
``python -m cloud_app`` runs one in the main thread until SIGTERM/SIGINT (``serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import json
import logging
import os
import threading
import time
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import splitcodec
from splitcodec import models
from splitcodec.bitstream import FORMAT_VERSION
from splitcodec.errors import BitstreamError
from splitcodec.inference import CloudTail, FeatureShapeError, Prediction
from splitcodec.wire import pb

from splitcodec.wire import rpc

from .admission import (DEFAULT_MAX_MESSAGE_BYTES, Abort, Envelope, Limits, check_inflight, check_size, check_token,
                        default_max_levels, status_for)
from .batcher import TailBatcher

log = logging.getLogger("splitcodec.cloud")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SplitInference"].full_name


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


# --- logging --------------------------------------------------------------------------------------

def clean(value, limit: int = 64) -> str:
    """A client-controlled string made safe for a log line: escaped (no newlines or control
    characters), truncated to ``limit`` characters with the original length noted."""
    s = str(value)
    short = s[:limit]
    out = short.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return out + (f"...(+{len(s) - limit})" if len(s) > limit else "")


class RequestLog:
    """One line per request (``key=value``, or JSON); rejected requests are rate-limited to
    ``max_rejects_per_s`` lines a second, the rest counted and reported on the next line."""

    def __init__(self, *, as_json: bool = False, max_rejects_per_s: int = 20):
        self.as_json, self.max_rejects = as_json, max_rejects_per_s
        self._window, self._in_window, self.suppressed = 0, 0, 0

    def __call__(self, req, status: str, resp=None, *, peer: str = "", reason: str = "") -> None:
        if status != "OK":
            now = int(time.monotonic())
            if now != self._window:
                self._window, self._in_window = now, 0
            self._in_window += 1
            if self._in_window > self.max_rejects:
                self.suppressed += 1
                return
        t = resp.timings if resp is not None else None
        fields = {"id": clean(req.request_id or "-"), "model": clean(req.model or "-"),
                  "split": clean(req.split or "-"), "bytes": len(req.bitstream),
                  "decode_ms": round(t.decode_ms, 2) if t else 0.0, "tail_ms": round(t.tail_ms, 2) if t else 0.0,
                  "queue_ms": round(t.queue_ms, 2) if t else 0.0, "batch": t.batch_size if t else 0,
                  "status": status}
        if reason:
            fields["reason"] = clean(reason, 160)
        if peer:
            fields["peer"] = clean(peer)
        if self.suppressed:
            fields["suppressed_rejects"], self.suppressed = self.suppressed, 0
        if self.as_json:
            log.info(json.dumps(fields))
        else:
            log.info(" ".join(f"{k}={v}" for k, v in fields.items()))


# --- decoding: cost-aware scheduling --------------------------------------------------------------

class DecodeScheduler:
    """Runs decodes on ``workers`` threads, cheapest expected cost first.

    A stream's cost is not known before decoding it (a small payload can code a very large number of
    bins), so each connection's recent decode time (an exponential average) predicts its next one.
    Queued requests wait in order of that prediction: a client sending ordinary frames is not stuck
    behind clients sending the costliest streams the envelope admits.  A request is refused at once
    (RESOURCE_EXHAUSTED, with a retry hint) when the expected decoding ahead of it exceeds
    ``max_queue_ms``.
    """

    ALPHA = 0.3
    MAX_PEERS = 4096
    COSTLY = 4.0
    COSTLY_MS = 5.0
    NEW_PEER_MS = 2.5  # a new connection is presumed to send ordinary frames until it proves otherwise

    def __init__(self, workers: int, max_queue_ms: float):
        self.workers, self.max_queue_ms = max(1, workers), max_queue_ms
        self.pool = futures.ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        self.running = 0
        self.queue: list = []  # heap of (expected ms, seq, future)
        self.seq = 0
        self.cost: dict[str, float] = {}  # peer -> expected decode ms
        self.costly_inflight = 0
        self.running_est: list[float] = []

    def expected(self, peer: str) -> float:
        return self.cost.get(peer, self.NEW_PEER_MS)

    def is_costly(self, est: float) -> bool:
        if est <= self.COSTLY_MS or len(self.cost) < 2:
            return False
        costs = sorted(self.cost.values())
        return est > self.COSTLY * costs[len(costs) // 4]

    @contextlib.contextmanager
    def admit(self, peer: str):
        """Admission for one request from ``peer`` (held until its answer is ready); yields the
        expected decode ms, the priority of the request downstream."""
        est = self.expected(peer)
        costly = self.is_costly(est)
        if costly and self.costly_inflight >= max(1, self.workers - 1):
            raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"server busy: this connection's streams cost about {est:.0f} ms to decode and "
                         f"{self.costly_inflight} such requests are in flight",
                         retry_after_ms=max(100, int(4 * est)), tarpit=True)
        self.costly_inflight += costly
        try:
            yield est
        finally:
            self.costly_inflight -= costly

    def _wait_ahead(self, est: float) -> float:
        """Expected ms before a request of expected cost ``est`` starts decoding: the queued requests it
        does not overtake, shared among the workers, plus (all workers busy) half the cheapest running one."""
        queued = sum(e for e, _, f in self.queue if e <= est and not f.done()) / self.workers
        busy = min(self.running_est) / 2 if len(self.running_est) >= self.workers else 0.0
        return queued + busy

    async def run(self, peer: str, fn, *args):
        est = self.expected(peer)
        ahead = self._wait_ahead(est)
        if ahead > self.max_queue_ms:
            raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"server busy: about {ahead:.0f} ms of decoding queued ahead of this request "
                         f"(limit {self.max_queue_ms:g} ms)", retry_after_ms=max(5, int(ahead)))
        loop = asyncio.get_running_loop()
        if self.running >= self.workers or self.queue:
            fut = loop.create_future()
            self.seq += 1
            heapq.heappush(self.queue, (est, self.seq, fut))
            try:
                await fut  # a slot is handed over by the decode finishing before us
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._release()  # we were handed a slot but will not use it
                raise
        else:
            self.running += 1
        t = time.perf_counter()
        self.running_est.append(est)
        try:
            return await loop.run_in_executor(self.pool, fn, *args)
        finally:
            self.running_est.remove(est)
            ms = 1e3 * (time.perf_counter() - t)
            self._learn(peer, ms)
            self._release()

    def _learn(self, peer: str, ms: float) -> None:
        old = self.cost.pop(peer, ms)
        if len(self.cost) >= self.MAX_PEERS:
            self.cost.pop(next(iter(self.cost)))  # forget the least recently seen
        self.cost[peer] = (1 - self.ALPHA) * old + self.ALPHA * ms

    def _release(self) -> None:
        while self.queue:
            _, _, fut = heapq.heappop(self.queue)
            if not fut.done():
                fut.set_result(None)  # the slot passes to the cheapest waiting request
                return
        self.running -= 1

    def close(self) -> None:
        for _, _, fut in self.queue:
            if not fut.done():
                fut.set_exception(Abort(grpc.StatusCode.UNAVAILABLE, "server shutting down"))
        self.queue.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)


# --- the service ----------------------------------------------------------------------------------

class SplitInferenceService(rpc.SplitInferenceServicer):
    def __init__(self, batchers: dict, *, token: str | None = None, limits: Limits | None = None,
                 request_log: RequestLog | None = None):
        self.batchers = batchers  # {(model, split): TailBatcher}
        self.defaults = {}  # model -> its split
        for (name, split) in batchers:
            self.defaults.setdefault(name, split)
        self.token = token
        self.limits = limits or Limits()
        levels = self.limits.max_levels or default_max_levels(batchers)
        self.envelopes = {k: Envelope(b.tail, levels) for k, b in batchers.items()}
        self.log = request_log or RequestLog()
        self.inflight = 0
        self.decoder = DecodeScheduler(self.limits.decode_workers, self.limits.max_queue_ms)
        self.health = None

    def start(self) -> None:
        for b in self.batchers.values():
            b.start()

    async def close(self) -> None:
        for b in self.batchers.values():
            await b.close()
        self.decoder.close()

    # -- helpers ------------------------------------------------------------------------------
    def _batcher(self, model: str, split: str) -> tuple[TailBatcher, Envelope]:
        split = split or self.defaults.get(model, "")
        b = self.batchers.get((model, split))
        if b is None:
            have = ", ".join(f"{m}:{s}" for m, s in self.batchers)
            raise Abort(grpc.StatusCode.NOT_FOUND,
                         f"model {clean(model)!r} split {clean(split)!r} is not served here (serving: {have})")
        return b, self.envelopes[(model, split)]

    async def _infer(self, req, context) -> pb.InferResponse:
        check_size(len(req.bitstream), self.limits)
        batcher, envelope = self._batcher(req.model, req.split)
        envelope.admit(req.bitstream)
        check_inflight(self.inflight, self.limits)
        peer = context.peer() if context is not None else ""
        self.inflight += 1
        try:
            with self.decoder.admit(peer) as priority:
                with batcher.announce():
                    feats, decode_ms = await self.decoder.run(peer, batcher.tail.decode, req.bitstream)
                if context is not None and context.cancelled():
                    raise asyncio.CancelledError
                size = (req.original_size.width, req.original_size.height) if req.HasField("original_size") else None
                pred, queue_ms = await batcher.submit(feats, size, req.top_k or 5, priority)
        except (BitstreamError, FeatureShapeError) as e:
            raise status_for(e) from None
        finally:
            self.inflight -= 1
        return _response(req, pred, decode_ms, queue_ms, feats.size)

    async def _abort(self, context, a: Abort):
        if a.tarpit:
            await asyncio.sleep(min(a.retry_after_ms, 1000) / 1e3)
        if a.retry_after_ms is not None:
            context.set_trailing_metadata((("retry-after-ms", str(a.retry_after_ms)),))
        await context.abort(a.code, a.message)

    # -- RPCs ---------------------------------------------------------------------------------
    async def Infer(self, request, context):
        try:
            check_token(context.invocation_metadata(), self.token)
            resp = await self._infer(request, context)
        except Abort as a:
            self.log(request, a.code.name, reason=a.message, peer=context.peer())
            await self._abort(context, a)
        except asyncio.CancelledError:
            self.log(request, "CANCELLED", peer=context.peer())
            raise
        self.log(request, "OK", resp)
        return resp

    async def InferStream(self, request_iterator, context):
        try:
            check_token(context.invocation_metadata(), self.token)
        except Abort as a:
            self.log(pb.InferRequest(), a.code.name, reason=a.message, peer=context.peer())
            await self._abort(context, a)
        frames = 0
        while True:
            try:
                req = await asyncio.wait_for(context.read(), timeout=self.limits.stream_idle_s)
            except asyncio.TimeoutError:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                    f"no frame for {self.limits.stream_idle_s:g} s: stream closed")
            if req is grpc.aio.EOF:
                return
            frames += 1
            if frames > self.limits.max_stream_frames:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"more than {self.limits.max_stream_frames} frames on one stream: open a new one")
            try:
                resp = await self._infer(req, context)
                self.log(req, "OK", resp)
            except Abort as a:
                self.log(req, a.code.name, reason=a.message, peer=context.peer())
                if a.tarpit:
                    await asyncio.sleep(min(a.retry_after_ms, 1000) / 1e3)
                resp = pb.InferResponse(request_id=req.request_id, error=pb.FrameError(code=a.code.name,
                                                                                       message=a.message))
            await context.write(resp)

    async def ListModels(self, request, context):
        try:
            check_token(context.invocation_metadata(), self.token)
        except Abort as a:
            await self._abort(context, a)
        out = pb.ListModelsResponse(server_version=splitcodec.__version__, bitstream_format_version=FORMAT_VERSION)
        for (name, split), b in self.batchers.items():
            s = b.tail.split
            out.models.append(pb.ModelInfo(name=name, task=b.tail.task, default_split=split, input_size=s.input_size,
                                           splits=[pb.SplitInfo(name=split, shape=list(s.feature_shape))]))
        return out


def _response(req, pred: Prediction, decode_ms: float, queue_ms: float, elements: int) -> pb.InferResponse:
    r = pb.InferResponse(request_id=req.request_id, elements=elements, bitstream_bytes=len(req.bitstream),
                         timings=pb.ServerTimings(decode_ms=decode_ms, tail_ms=pred.tail_ms, queue_ms=queue_ms,
                                                  batch_size=pred.batch_size))
    r.classes.extend(pb.ClassScore(index=c.index, name=c.name, score=c.score) for c in pred.classes)
    r.detections.extend(pb.Detection(x0=d.box[0], y0=d.box[1], x1=d.box[2], y1=d.box[3], category_id=d.category_id,
                                     name=d.name, score=d.score) for d in pred.detections)
    return r


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


# --- the server -----------------------------------------------------------------------------------

async def start_async(address: str, tails: dict, *, token=None, limits: Limits | None = None, batching=True,
                      max_batch=8, batch_window_ms=2.0, tls=None, reflection_on=True, request_log=None):
    """Build and start a ``grpc.aio`` server on the running loop; returns ``(server, port, service)``."""
    limits = limits or Limits()
    if not tails:
        raise ValueError("no models to serve")
    batchers = {k: TailBatcher(t, batching=batching, max_batch=max_batch, window_ms=batch_window_ms)
                for k, t in tails.items()}
    service = SplitInferenceService(batchers, token=token, limits=limits, request_log=request_log)
    opts = [("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", limits.max_message_bytes)]
    server = grpc.aio.server(options=opts)
    rpc.add_SplitInferenceServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if reflection_on:
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if tls:
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(tls[1], tls[0])]))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    service.start()
    await server.start()
    service.health = health_servicer
    return server, port, service


async def stop_async(server, service, grace: float = 5.0) -> None:
    """Stop taking traffic (health NOT_SERVING), give in-flight requests ``grace`` seconds, then
    cancel what is left (those callers get a status), fail anything still queued, stop."""
    for name in ("", SERVICE_NAME):
        await service.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.stop(grace)
    await service.close()


class ServerHandle:
    """An aio server running on an event loop in a background thread (tests, embedding)."""

    def __init__(self, address: str, tails: dict, **kw):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="cloud-server", daemon=True)
        self._thread.start()
        self.server, self.port, self.service = asyncio.run_coroutine_threadsafe(
            start_async(address, tails, **kw), self.loop).result()

    def stop(self, grace: float = 5.0) -> None:
        if not self.loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(stop_async(self.server, self.service, grace), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


def create_server(address: str = "127.0.0.1:0", tails: dict | None = None, *, specs=(), token: str | None = None,
                  max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, batching: bool = True, max_batch: int = 8,
                  batch_window_ms: float = 2.0, device: str = "cpu", tls: tuple | None = None,
                  limits: Limits | None = None, **kw):
    """Start a server in a background thread; returns ``(handle, port, service)``.

    ``tails`` (already loaded) or ``specs`` (``ModelSpec``s to load) choose the models.  ``tls`` is
    ``(cert_pem_bytes, key_pem_bytes)``.
    """
    tails = dict(tails or {})
    tails.update(load_tails(specs, device) if specs else {})
    limits = limits or Limits(max_message_bytes=max_message_bytes)
    if limits.max_levels is None:  # calibration files may widen the envelope
        limits = dataclasses.replace(limits, max_levels=default_max_levels(tails, specs))
    h = ServerHandle(address, tails, token=token, limits=limits, batching=batching, max_batch=max_batch,
                     batch_window_ms=batch_window_ms, tls=tls, **kw)
    return h, h.port, h.service


def shutdown(handle: ServerHandle, service=None, grace: float = 5.0) -> None:
    """Stop a server started by ``create_server`` (see ``stop_async``)."""
    handle.stop(grace)


def token_from_env(token: str | None = None, token_file: str | None = None) -> str | None:
    """The bearer token: ``--token-file``, else ``SPLITCODEC_TOKEN``, else ``--token`` (visible in the
    process list: discouraged)."""
    if token_file:
        with open(token_file) as f:
            return f.read().strip() or None
    return os.environ.get("SPLITCODEC_TOKEN") or token or None
