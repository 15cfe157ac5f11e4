"""Starting and stopping the cloud server: an asyncio gRPC core (``grpc.aio``) over the library's
synchronous ``CloudTail``.

An open or idle call costs a coroutine, not a thread: decoding runs in a bounded thread pool
(``cloud_app.scheduler``), each model's tail in a thread of its own (``cloud_app.batcher``), and health
checks, ``ListModels`` and reflection are answered on the event loop, never behind inference.

Before any message is read: the bearer token (``cloud_app.interceptors.TokenGate``), the number of
concurrent calls (``max_concurrent_rpcs``), streams per connection (HTTP/2 ``max_concurrent_streams``),
connection idle time and age, keepalive-ping enforcement, and the anonymous health-watch/reflection
streams (``AnonymousStreamGate``).  Then, before decoding, admission (``cloud_app.admission``): the
message size (sized from the served envelopes unless ``--max-message-bytes`` says otherwise), the request's
fields, the header against the split's envelope, in-flight and expected-queue limits; decodes run
cheapest-expected-first; a cancelled call or one past its deadline is not decoded or run if it has not
started; a stream is closed after ``stream_idle_s`` without a frame or with a response not taken, or after
``max_stream_frames``.  Each request's failure is its own status (``cloud_app.servicer``).

``create_server(address, ...) -> (handle, port, service)`` starts a server on an event loop of its own in
a background thread (for tests and embedding); ``shutdown(handle, service, grace)`` stops it.
``python -m cloud_app`` runs one in the main thread until SIGTERM/SIGINT/SIGHUP (``serve``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from splitcodec.wire import rpc

from .admission import Limits, default_max_levels, default_max_message_bytes
from .batcher import TailBatcher
from .interceptors import AnonymousStreamGate, MessageGate, RequestGate, TokenGate
from .request_log import quiet_library_logs
from .servicer import SERVICE_NAME, SplitInferenceService
from .specs import load_tails

__all__ = ["start_async", "stop_async", "ServerHandle", "create_server", "shutdown", "token_from_env",
           "resolve_limits", "server_options", "check_bindable"]


def resolve_limits(limits: Limits | None, tails: dict, specs=()) -> Limits:
    """``limits`` with the defaults that depend on what is served filled in: N from the models' operating
    points and calibration files, the message size from the envelope."""
    limits = limits or Limits()
    levels = limits.max_levels or default_max_levels(tails, specs)
    size = limits.max_message_bytes or default_max_message_bytes(tails, levels)
    return dataclasses.replace(limits, max_levels=levels, max_message_bytes=size)


def check_bindable(host: str, port: int) -> None:
    """Refuse (``OSError``, one line) an address the server could not listen on — a port in use, an address
    that is not this machine's — before any model loads (gRPC itself would say so only after)."""
    import errno
    import socket

    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror} (--host)") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: TIME_WAIT is no conflict
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise OSError(f"cannot listen on {host}:{port}: the port is in use (another server?); choose "
                              "another --port") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise OSError(f"cannot listen on {host}:{port}: {host} is not an address of this machine "
                              "(--host)") from None
            raise OSError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def server_options(limits: Limits) -> list[tuple[str, int]]:
    """The gRPC core's channel arguments for ``limits`` (message size, streams, connections, keepalive)."""
    ms = lambda s: int(1000 * s)  # noqa: E731
    return [("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", limits.max_message_bytes),
            ("grpc.max_concurrent_streams", limits.max_streams_per_connection),
            ("grpc.max_connection_idle_ms", ms(limits.connection_idle_s)),
            ("grpc.max_connection_age_ms", ms(limits.connection_age_s)),
            ("grpc.max_connection_age_grace_ms", ms(limits.connection_age_grace_s)),
            ("grpc.http2.min_ping_interval_without_data_ms", ms(limits.min_ping_interval_s)),
            ("grpc.http2.max_ping_strikes", 2),
            # a second server on a port in use must fail to start, not share the port (gRPC's default on Linux)
            ("grpc.so_reuseport", 0),
            ("grpc.keepalive_permit_without_calls", 1)]




async def start_async(address: str, tails: dict, *, token=None, limits: Limits | None = None, batching=True,
                      max_batch=8, batch_window_ms=2.0, tls=None, reflection_on=True, request_log=None,
                      metrics_address: tuple[str, int] | None = None):
    """Build and start a ``grpc.aio`` server on the running loop; returns ``(server, port, service)``.
    ``metrics_address`` (host, port): serve Prometheus metrics there (``cloud_app.metrics``; port 0: any free
    one, then ``service.metrics_port``)."""
    if not tails:
        raise ValueError("no models to serve")
    limits = resolve_limits(limits, tails)
    quiet_library_logs()
    batchers = {k: TailBatcher(t, batching=batching, max_batch=max_batch, window_ms=batch_window_ms)
                for k, t in tails.items()}
    service = SplitInferenceService(batchers, limits=limits, request_log=request_log)
    # outermost first (the request gate bounds health checks, which need no token)
    gates = [RequestGate(limits), TokenGate(token, on_refuse=service.refused), MessageGate(on_refuse=service.refused),
             AnonymousStreamGate(limits.max_anonymous_streams, limits.anonymous_stream_s)]
    server = grpc.aio.server(options=server_options(limits), interceptors=gates,
                             maximum_concurrent_rpcs=limits.max_concurrent_rpcs)
    rpc.add_SplitInferenceServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if reflection_on:
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        if tls:
            port = server.add_secure_port(address, grpc.ssl_server_credentials([(tls[1], tls[0])]))
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # grpc raises this when the address cannot be bound
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {address}: the port is in use or the address is not this machine's "
                      "(--host, --port)")
    if metrics_address is not None:
        from .metrics import Metrics

        service.metrics = Metrics(service)
        service.metrics_port = service.metrics.serve(*metrics_address)
    service.start()
    await server.start()
    service.health = health_servicer
    return server, port, service


async def stop_async(server, service, grace: float = 5.0) -> None:
    """Stop taking traffic (health NOT_SERVING), end every stream after the frame it is serving (UNAVAILABLE:
    its client resumes on another replica), give in-flight requests ``grace`` seconds, then cancel what is
    left (those callers get a status), fail anything still queued, stop."""
    for name in ("", SERVICE_NAME):
        await service.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    service.closing.set()  # streams end after the frame in hand instead of holding the grace open
    await server.stop(grace)
    await service.close()
    if service.metrics is not None:
        service.metrics.close()


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
                  max_message_bytes: int | None = None, batching: bool = True, max_batch: int = 8,
                  batch_window_ms: float = 2.0, device: str = "cpu", tls: tuple | None = None,
                  limits: Limits | None = None, **kw):
    """Start a server in a background thread; returns ``(handle, port, service)``.

    ``tails`` (already loaded) or ``specs`` (``ModelSpec``s to load) choose the models.  ``tls`` is
    ``(cert_pem_bytes, key_pem_bytes)``.
    """
    tails = dict(tails or {})
    tails.update(load_tails(specs, device) if specs else {})
    limits = resolve_limits(limits or Limits(max_message_bytes=max_message_bytes), tails, specs)
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
