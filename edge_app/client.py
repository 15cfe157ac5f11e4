"""The gRPC client: deadlines on every call, retries with backoff when the server is unavailable."""

from __future__ import annotations

import json
import time

import grpc

from splitcodec.wire import rpc

RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}})


def channel_target(server: str) -> str:
    """A gRPC target for ``host:port``, a URI (``dns:///name:port``), or a comma-separated list of
    ``ip:port`` replicas (``ipv4:`` / ``ipv6:`` target with one entry per replica)."""
    if "," not in server:
        return server
    parts = [p.strip() for p in server.split(",") if p.strip()]
    scheme = "ipv6" if all(p.startswith("[") for p in parts) else "ipv4"
    return f"{scheme}:{','.join(parts)}"


class ServerUnreachable(RuntimeError):
    pass


class EdgeClient:
    def __init__(self, server: str, *, token: str | None = None, tls_ca: bytes | None = None, timeout: float = 10.0,
                 retries: int = 3, backoff: float = 0.2, max_message_bytes: int = 16 << 20):
        opts = [("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
                # several replicas (a list of addresses or a DNS name with several records): gRPC's own
                # round_robin balancing, skipping replicas whose health service does not say SERVING
                ("grpc.service_config", SERVICE_CONFIG)]
        target = channel_target(server)
        if tls_ca is not None:
            self.channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=tls_ca), opts)
        else:
            self.channel = grpc.insecure_channel(target, opts)
        self.server, self.timeout, self.retries, self.backoff = server, timeout, retries, backoff
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.stub = rpc.SplitInferenceStub(self.channel)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.channel.close()

    def wait_ready(self, timeout: float | None = None) -> None:
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout or self.timeout)
        except grpc.FutureTimeoutError:
            raise ServerUnreachable(f"cannot reach a splitcodec server at {self.server} "
                                    f"within {timeout or self.timeout:.0f} s") from None

    def _call(self, fn, request):
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return fn(request, timeout=self.timeout, metadata=self.metadata)
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE or attempt == self.retries:
                    if e.code() == grpc.StatusCode.UNAVAILABLE:
                        raise ServerUnreachable(f"cannot reach a splitcodec server at {self.server}: "
                                                f"{e.details()} (after {attempt + 1} attempts)") from None
                    raise
                time.sleep(delay)
                delay *= 2

    def infer(self, request):
        return self._call(self.stub.Infer, request)

    def list_models(self, request):
        return self._call(self.stub.ListModels, request)

    def stream(self, requests, timeout: float | None = None):
        """Responses to an iterator of requests, in order (one deadline for the whole stream)."""
        return self.stub.InferStream(requests, timeout=timeout, metadata=self.metadata)


# Exit codes of the edge CLI, one per outcome (documented in docs/deploy.md).
EXIT_OK = 0  # every frame answered without error
EXIT_FRAME_ERRORS = 1  # every frame answered, some with a per-frame error
EXIT_USAGE = 2  # bad options or inputs
EXIT_UNREACHABLE = 3  # no server reachable
EXIT_REFUSED = 4  # the server refused the call (its status code is printed)
EXIT_UNANSWERED = 5  # frames left unanswered after the stream broke or ended early, retries spent
EXIT_PROTOCOL = 6  # the server answered with responses that match no frame sent (garbage, extra, duplicate)


class StreamProtocolError(RuntimeError):
    """A response on a stream matches no frame awaiting an answer."""


class StreamSession:
    """Frames over ``InferStream`` with answers matched by ``request_id``, not by position.

    ``run(frames)`` sends ``(request_id, request)`` pairs (produced lazily, encoding as it goes) and
    calls ``on_answer(request_id, response)`` for each answer.  When the stream breaks (UNAVAILABLE,
    a reset, the server ending it early) it opens a new one that resends every frame not answered
    yet, in order, up to ``retries`` times; frames still unanswered are returned, never dropped
    silently.  A response whose id matches no frame awaiting an answer raises ``StreamProtocolError``.
    ``on_restart(requests) -> requests`` (optional) rewrites the frames resent on a new stream (the edge
    re-encodes them as a new sequence starting with an intra frame: the new stream's server holds no reference).
    """

    def __init__(self, client: "EdgeClient", *, retries: int = 3, timeout: float | None = None, on_restart=None):
        self.client, self.retries, self.timeout, self.on_restart = client, retries, timeout, on_restart
        self.attempts = 0
        self.errors: list[str] = []
        self.input_exhausted = False  # False after a failure: frames after the last one sent were not read

    def run(self, frames, on_answer) -> list[str]:
        import threading
        from collections import OrderedDict

        self._pending: "OrderedDict[str, object]" = OrderedDict()
        self._source = iter(frames)
        self._lock = threading.Lock()
        self._state = {"exhausted": False, "owner": 0, "error": None}
        pending, lock, state = self._pending, self._lock, self._state
        while True:
            with lock:
                state["owner"] = attempt = self.attempts
                resend = list(pending.values())
                if attempt and resend and self.on_restart is not None:
                    resend = list(self.on_restart(resend))
                    for req in resend:
                        pending[req.request_id] = req
            self.attempts += 1
            broken = self._one_stream(attempt, resend, on_answer)
            if state["error"] is not None:
                raise state["error"]
            with lock:
                self.input_exhausted = state["exhausted"]
                done = state["exhausted"] and not pending
            if done:
                return []
            self.errors.append(broken or f"the server ended the stream with {len(pending)} frame(s) unanswered")
            if self.attempts > self.retries:
                return list(pending)
            time.sleep(self.client.backoff * 2 ** (self.attempts - 1))

    def _requests(self, attempt: int, resend: list):
        """The frames of one stream: those awaiting an answer, then new ones while this attempt is current."""
        pending, state = self._pending, self._state
        yield from resend
        while True:
            with self._lock:  # only the current attempt pulls from the source
                if state["owner"] != attempt or state["exhausted"]:
                    return
                try:
                    rid, req = next(self._source)
                except StopIteration:
                    state["exhausted"] = True
                    return
                except Exception as e:  # an input that cannot be read or encoded: stop sending
                    state["error"], state["exhausted"] = e, True
                    return
                if rid in pending:
                    raise StreamProtocolError(f"two frames with request_id {rid!r}")
                pending[rid] = req
            yield req

    def _one_stream(self, attempt: int, resend: list, on_answer) -> str | None:
        """One ``InferStream`` call until it ends; why it broke (None: it ended normally)."""
        call = self.client.stream(self._requests(attempt, resend), timeout=self.timeout)
        try:
            for resp in call:
                with self._lock:
                    if resp.request_id not in self._pending:
                        call.cancel()
                        raise StreamProtocolError(
                            f"the server answered request_id {resp.request_id[:64]!r}, which awaits no answer")
                    self._pending.pop(resp.request_id)
                on_answer(resp.request_id, resp)
        except grpc.RpcError as e:
            if e.code() not in RETRYABLE + (grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
                                            grpc.StatusCode.UNKNOWN):
                raise
            return f"{e.code().name}: {e.details()}"
        finally:
            call.cancel()
        return None
