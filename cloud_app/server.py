"""The cloud server: a thin gRPC servicer over ``splitcodec.inference.CloudTail``.

``create_server(address, ...) -> (server, port, service)`` builds and starts a
server (port 0 picks a free port, for tests); ``python -m cloud_app`` runs one
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
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
from splitcodec.errors import BitstreamError, TensorTooLargeError
from splitcodec.inference import CloudTail, FeatureShapeError, Prediction
from splitcodec.wire import pb

from . import rpc

log = logging.getLogger("splitcodec.cloud")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SplitInference"].full_name
DEFAULT_MAX_MESSAGE_BYTES = 16 << 20


@dataclass(frozen=True)
class ModelSpec:
    """One model the server loads: ``name[:split][=weights]`` on the command line."""

    name: str
    split: str = "paper"
    weights: str | None = "DEFAULT"

    @classmethod
    def from_calibration(cls, path) -> "ModelSpec":
        """The model and split a quantizer file was calibrated for (its bundled weights, if any)."""
        from splitcodec.calibration import load_quantizer

        _, doc = load_quantizer(path)
        if not doc.get("model") or not doc.get("split"):
            raise ValueError(f"{path} names no model and split to serve")
        return cls.parse(f"{doc['model']}:{doc['split']}")

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        head, _, weights = text.partition("=")
        name, _, split = head.partition(":")
        default = "DEFAULT" if name == "efficientnet_lite0" else None
        return cls(name.strip(), split.strip() or "paper", weights.strip() or default)


class _Job:
    __slots__ = ("features", "size", "top_k", "future", "t_submit")

    def __init__(self, features, size, top_k):
        self.features, self.size, self.top_k = features, size, top_k
        self.future: futures.Future = futures.Future()
        self.t_submit = time.perf_counter()


class TailBatcher:
    """Runs a ``CloudTail`` for concurrent requests.

    With batching on, a worker thread gathers queued requests into one forward
    pass of at most ``max_batch``; it waits (up to ``window_ms`` after the first)
    only while other requests are still being decoded and about to join, so a
    lone client pays no batching delay.  With batching off, requests take turns
    running their own forward pass.
    """

    def __init__(self, tail: CloudTail, *, batching: bool = True, max_batch: int = 8, window_ms: float = 2.0):
        self.tail, self.batching = tail, batching
        self.max_batch, self.window = max(1, max_batch), window_ms / 1e3
        self._lock = threading.Lock()
        self._arriving = 0  # requests being decoded that will be submitted here
        self._count_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        if batching:
            self._worker = threading.Thread(target=self._loop, name=f"batcher-{tail.split.name}", daemon=True)
            self._worker.start()

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self._arriving += delta

    @contextlib.contextmanager
    def arriving(self):
        """Wrap the decoding of a request: while it runs, the worker may wait for the
        request to join the batch.  ``submit`` ends the wait once the job is queued;
        a request that fails to decode ends it on the way out."""
        self._count(1)
        try:
            yield
        except BaseException:
            self._count(-1)
            raise

    def submit(self, features, size, top_k, *, announced: bool = True) -> tuple[Prediction, float]:
        """Prediction for one request, and the ms it waited for its batch.  ``announced``:
        the request was decoded inside ``arriving()``."""
        job = _Job(features, size, top_k)
        if not self.batching:
            if announced:
                self._count(-1)
            with self._lock:
                waited = 1e3 * (time.perf_counter() - job.t_submit)
                return self.tail.run([features], [size], top_k)[0], waited
        self._queue.put(job)
        if announced:
            self._count(-1)
        return job.future.result()

    def _loop(self):
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.perf_counter() + self.window
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except queue.Empty:
                    pass
                if self._arriving == 0 or time.perf_counter() >= deadline:
                    break
                time.sleep(0.0002)  # a request is still decoding: give it a moment to join
            start = time.perf_counter()
            try:
                preds = self.tail.run([j.features for j in batch], [j.size for j in batch],
                                      max(j.top_k for j in batch))
            except Exception as e:  # pragma: no cover - surfaced to every caller
                for j in batch:
                    j.future.set_exception(e)
                continue
            for j, p in zip(batch, preds):
                p.classes = p.classes[: j.top_k]
                j.future.set_result((p, 1e3 * (start - j.t_submit)))

    def close(self):
        self._stop.set()


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class SplitInferenceService(rpc.SplitInferenceServicer):
    def __init__(self, batchers: dict, *, token: str | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        self.batchers = batchers  # {(model, split): TailBatcher}
        self.defaults = {}  # model -> its split
        for (name, split) in batchers:
            self.defaults.setdefault(name, split)
        self.token = token
        self.max_message_bytes = max_message_bytes

    # -- helpers ------------------------------------------------------------------------------
    def _authorize(self, context):
        if self.token is None:
            return
        md = dict(context.invocation_metadata())
        if md.get("authorization") != f"Bearer {self.token}":
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

    def _require_auth(self, context):
        """Abort the call (UNAUTHENTICATED) unless it carries the bearer token."""
        try:
            self._authorize(context)
        except _Abort as a:
            context.abort(a.code, a.message)

    def _batcher(self, model: str, split: str) -> TailBatcher:
        split = split or self.defaults.get(model, "")
        b = self.batchers.get((model, split))
        if b is None:
            have = ", ".join(f"{m}:{s}" for m, s in self.batchers)
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"model {model!r} split {split!r} is not served here (serving: {have})")
        return b

    def _infer(self, req) -> pb.InferResponse:
        if len(req.bitstream) > self.max_message_bytes:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"bitstream of {len(req.bitstream)} bytes exceeds {self.max_message_bytes}")
        batcher = self._batcher(req.model, req.split)
        tail = batcher.tail
        try:
            with batcher.arriving():
                feats, decode_ms = tail.decode(req.bitstream)
        except TensorTooLargeError as e:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e)) from None
        except (BitstreamError, FeatureShapeError) as e:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"{type(e).__name__}: {e}") from None
        size = (req.original_size.width, req.original_size.height) if req.HasField("original_size") else None
        pred, queue_ms = batcher.submit(feats, size, req.top_k or 5)
        return _response(req, pred, decode_ms, queue_ms, feats.size)

    def _log(self, req, status: str, resp=None):
        t = resp.timings if resp is not None else None
        log.info("id=%s model=%s bytes=%d decode_ms=%.2f tail_ms=%.2f batch=%d status=%s", req.request_id or "-",
                 req.model, len(req.bitstream), t.decode_ms if t else 0.0, t.tail_ms if t else 0.0,
                 t.batch_size if t else 0, status)

    # -- RPCs ---------------------------------------------------------------------------------
    def Infer(self, request, context):
        try:
            self._authorize(context)
            resp = self._infer(request)
        except _Abort as a:
            self._log(request, a.code.name)
            context.abort(a.code, a.message)
        self._log(request, "OK", resp)
        return resp

    def InferStream(self, request_iterator, context):
        self._require_auth(context)
        for req in request_iterator:
            try:
                resp = self._infer(req)
                self._log(req, "OK", resp)
            except _Abort as a:
                self._log(req, a.code.name)
                resp = pb.InferResponse(request_id=req.request_id, error=pb.FrameError(code=a.code.name, message=a.message))
            yield resp

    def ListModels(self, request, context):
        self._require_auth(context)
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


def create_server(address: str = "[::]:0", tails: dict | None = None, *, specs=(), token: str | None = None,
                  workers: int = 16, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, batching: bool = True,
                  max_batch: int = 8, batch_window_ms: float = 2.0, device: str = "cpu", tls: tuple | None = None):
    """Build and start a server; returns ``(server, port, service)``.

    ``tails`` (already loaded) or ``specs`` (``ModelSpec``s to load) choose the
    models.  ``tls`` is ``(cert_pem_bytes, key_pem_bytes)``.
    """
    tails = dict(tails or {})
    tails.update(load_tails(specs, device) if specs else {})
    if not tails:
        raise ValueError("no models to serve")
    batchers = {k: TailBatcher(t, batching=batching, max_batch=max_batch, window_ms=batch_window_ms)
                for k, t in tails.items()}
    service = SplitInferenceService(batchers, token=token, max_message_bytes=max_message_bytes)
    opts = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", max_message_bytes)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=opts)
    rpc.add_SplitInferenceServicer_to_server(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if tls:
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(tls[1], tls[0])]))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    server.start()
    service.health = health_servicer
    return server, port, service


def shutdown(server, service, grace: float = 5.0):
    """Stop taking traffic (health NOT_SERVING), let in-flight requests finish, stop."""
    for name in ("", SERVICE_NAME):
        service.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    server.stop(grace).wait()
    for b in service.batchers.values():
        b.close()


def token_from_env(token: str | None) -> str | None:
    return token or os.environ.get("SPLITCODEC_TOKEN") or None
