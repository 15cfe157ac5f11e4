"""The gRPC client of a long-running edge agent: a deadline on every call; a server that restarts or a replica that
goes away is waited for (gRPC wait-for-ready, reconnection backoff of at most ``MAX_RECONNECT_MS``) for up to
``retry_for`` seconds; a call shed with ``RESOURCE_EXHAUSTED`` and a ``retry-after-ms`` hint is retried after that
delay, within the same budget."""

from __future__ import annotations

import json
import socket
import ssl
import time

import grpc

from splitcodec.wire import rpc

RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
# a unary call that ran out of its deadline while waiting for a server (wait-for-ready) is tried again too
UNARY_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
MAX_RECONNECT_MS = 1000  # the channel tries a lost server again at least this often
MAX_RETRY_AFTER_S = 5.0  # a server's retry-after-ms hint is followed up to this long per wait
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}})


def channel_target(server: str) -> str:
    """A gRPC target for ``host:port``, a URI (``dns:///name:port``), or a comma-separated list of
    ``host:port`` replicas (an ``ipv4:`` / ``ipv6:`` target with one entry per replica; host names are resolved
    here, each to its addresses).  ``ValueError`` (one line) for an entry that is not ``host:port`` or a name
    that does not resolve."""
    if "," not in server:
        return server
    addresses = []
    for part in (p.strip() for p in server.split(",")):
        host, sep, port = part.rpartition(":")
        if not part or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--server {server!r}: {part!r} is not host:port")
        addresses += _resolve(host.strip("[]"), int(port), server)
    v4 = [a for a in addresses if not a.startswith("[")]
    return f"ipv4:{','.join(dict.fromkeys(v4))}" if v4 else f"ipv6:{','.join(dict.fromkeys(addresses))}"


def _resolve(host: str, port: int, server: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ValueError(f"--server {server!r}: cannot resolve {host!r} ({e.strerror})") from None
    return [f"[{i[4][0]}]:{port}" if i[0] == socket.AF_INET6 else f"{i[4][0]}:{port}" for i in infos]


class ServerUnreachable(RuntimeError):
    pass


def retry_after_s(error) -> float | None:
    """The ``retry-after-ms`` hint of a RESOURCE_EXHAUSTED status, in seconds (None: no hint, not retried)."""
    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    for key, value in error.trailing_metadata() or ():
        if key == "retry-after-ms":
            try:
                return min(max(int(value), 0) / 1e3, MAX_RETRY_AFTER_S)
            except ValueError:
                return None
    return None


def diagnose_connection(server: str, tls_ca: bytes | None, timeout: float = 2.0) -> str | None:
    """Why a server that does not answer gRPC may be the wrong kind of server, in one phrase: a TLS server
    reached in plain text, a plain server reached with TLS, a certificate another CA signed.  None when
    nothing answers at the TCP level either (or several replicas are named)."""
    if "," in server or server.startswith(("dns:", "ipv4:", "ipv6:", "unix:")):
        return None
    host, _, port = server.rpartition(":")
    host = host.strip("[]") or "localhost"
    try:
        raw = socket.create_connection((host, int(port)), timeout=timeout)
    except (OSError, ValueError):
        return None
    ctx = ssl.create_default_context()
    if tls_ca is None:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cadata=tls_ca.decode("ascii", "replace"))
        ctx.check_hostname = False  # gRPC checks the name itself; here only the chain and the protocol
    ctx.set_alpn_protocols(["h2"])
    try:
        with ctx.wrap_socket(raw, server_hostname=host):
            if tls_ca is None:
                return "the server speaks TLS: pass --tls-ca with its CA certificate"
            return None
    except ssl.SSLCertVerificationError as e:
        return f"the server's certificate is not signed by the --tls-ca certificate ({e.verify_message})"
    except (ssl.SSLError, OSError) as e:
        if tls_ca is not None:
            return f"the server does not speak TLS ({type(e).__name__}): drop --tls-ca, or use the server's TLS port"
        return None
    finally:
        raw.close()


class EdgeClient:
    def __init__(self, server: str, *, token: str | None = None, tls_ca: bytes | None = None, timeout: float = 10.0,
                 retries: int = 3, retry_for: float = 60.0, backoff: float = 0.2, max_backoff: float = 2.0,
                 max_message_bytes: int = 16 << 20):
        opts = [("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_MS),
                # several replicas (a list of addresses or a DNS name with several records): gRPC's own
                # round_robin balancing, skipping replicas whose health service does not say SERVING
                ("grpc.service_config", SERVICE_CONFIG)]
        target = channel_target(server)
        if tls_ca is not None:
            self.channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=tls_ca), opts)
        else:
            self.channel = grpc.insecure_channel(target, opts)
        self.server, self.timeout, self.retries, self.backoff = server, timeout, retries, backoff
        self.retry_for, self.max_backoff, self.tls_ca = retry_for, max_backoff, tls_ca
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.stub = rpc.SplitInferenceStub(self.channel)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.channel.close()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Until the channel is connected, at most ``timeout`` s (default ``timeout``); ``ServerUnreachable``
        names the likely cause (a TLS mismatch, another CA) when something answers but not gRPC."""
        timeout = self.timeout if timeout is None else timeout
        try:
            grpc.channel_ready_future(self.channel).result(timeout=max(timeout, 0.05))
        except grpc.FutureTimeoutError:
            why = diagnose_connection(self.server, self.tls_ca)
            raise ServerUnreachable(f"cannot reach a splitcodec server at {self.server} within {timeout:.0f} s"
                                    + (f": {why}" if why else "")) from None

    def _call(self, fn, request):
        """One unary call, waiting for a server for up to ``retry_for`` s in all (``retries`` retries at most)
        and following a RESOURCE_EXHAUSTED ``retry-after-ms`` hint within the same budget."""
        give_up = time.monotonic() + self.retry_for
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return fn(request, timeout=self.timeout, metadata=self.metadata, wait_for_ready=True)
            except grpc.RpcError as e:
                wait = retry_after_s(e)
                if wait is None and e.code() in UNARY_RETRYABLE:
                    wait, delay = delay, min(2 * delay, self.max_backoff)
                if wait is None or attempt == self.retries or time.monotonic() + wait > give_up:
                    if e.code() in UNARY_RETRYABLE and wait is not None:
                        why = diagnose_connection(self.server, self.tls_ca)
                        raise ServerUnreachable(
                            f"cannot reach a splitcodec server at {self.server}: {e.code().name} (after "
                            f"{attempt + 1} attempts, --retry-for {self.retry_for:g} s)"
                            + (f": {why}" if why else "")) from None
                    raise
                time.sleep(wait)

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
EXIT_INTERRUPTED = 130  # stopped by SIGINT/SIGTERM: frames in flight answered or listed, the summary printed


def _with_head(req, head):
    """A copy of ``req`` carrying ``head`` (the request kept for a resend stays as it was)."""
    out = type(req)()
    out.CopyFrom(req)
    out.head.CopyFrom(head)
    return out


class StreamProtocolError(RuntimeError):
    """A response on a stream matches no frame awaiting an answer."""


class StreamSession:
    """Frames over ``InferStream`` with answers matched by ``request_id``, not by position.

    ``run(frames)`` sends ``(request_id, request)`` pairs (produced lazily, encoding as it goes) and
    calls ``on_answer(request_id, response)`` for each answer.  When the stream breaks (UNAVAILABLE,
    a reset, the server ending it early) it waits for a server (the client's ``retry_for`` seconds
    since the last answer, at most) and opens a new stream that resends every frame not answered yet, in
    order, up to ``retries`` times in a row without an answer; frames still unanswered are returned, never dropped
    silently.  A response whose id matches no frame awaiting an answer raises ``StreamProtocolError``.
    ``on_restart(requests) -> requests`` (optional) rewrites the frames resent on a new stream (the edge
    re-encodes them as a new sequence starting with an intra frame: the new stream's server holds no reference).
    ``max_in_flight`` (0: no bound): the next frame is read from the source only once fewer than this many frames
    await an answer, so a slow link never queues more (a camera source meanwhile moves on to newer frames);
    ``on_blocked()`` is called each time a frame had to wait for that.  ``stream_head() -> HeadIdentity``: asked
    when each stream's first frame is sent, and sent with that frame only (the server checks the stream's later
    frames against it).
    """

    def __init__(self, client: "EdgeClient", *, retries: int = 3, timeout: float | None = None, on_restart=None,
                 max_in_flight: int = 0, on_blocked=None, stream_head=None):
        self.client, self.retries, self.timeout, self.on_restart = client, retries, timeout, on_restart
        self.max_in_flight, self.on_blocked, self.stream_head = int(max_in_flight), on_blocked, stream_head
        self.attempts = 0
        self.errors: list[str] = []
        self.last_answer = time.monotonic()  # the retry budget counts from here
        self.answers = 0
        self.input_exhausted = False  # False after a failure: frames after the last one sent were not read

    def run(self, frames, on_answer) -> list[str]:
        import threading
        from collections import OrderedDict

        self._pending: "OrderedDict[str, object]" = OrderedDict()
        self._source = iter(frames)
        # two locks: ``_lock`` guards the frames awaiting an answer and the state, held only for dictionary
        # updates (the answer loop takes it for each answer); ``_pull`` is held while the next frame is read
        # and encoded, so only one stream pulls from the source, and a new stream starts only once a pull in
        # progress has put its frame among those to resend.  Answers are never held up by the next frame.
        self._lock, self._pull = threading.Lock(), threading.Lock()
        self._answered = threading.Condition(self._lock)  # notified with each answer (a frame slot freed)
        self._state = {"exhausted": False, "owner": 0, "error": None}
        pending, lock, state = self._pending, self._lock, self._state
        failures = 0  # streams that broke since the last answer (this one included)
        while True:
            with self._pull, lock:
                state["owner"] = attempt = self.attempts
                resend = list(pending.values())
                if attempt and resend and self.on_restart is not None:
                    resend = list(self.on_restart(resend))
                    for req in resend:
                        pending[req.request_id] = req
            self.attempts += 1
            answers_before = self.answers
            broken = self._one_stream(attempt, resend, on_answer)
            failures = 1 if self.answers > answers_before else failures + 1  # breaks since the last answer
            if state["error"] is not None:
                raise state["error"]
            with lock:
                self.input_exhausted = state["exhausted"]
                done = state["exhausted"] and not pending
            if done:
                return []
            self.errors.append(broken or f"the server ended the stream with {len(pending)} frame(s) unanswered")
            if failures > self.retries:
                return list(pending)
            time.sleep(min(self.client.backoff * 2 ** (failures - 1), self.client.max_backoff))
            try:  # a restarting server or a replica change: wait for one, within the budget since the last answer
                self.client.wait_ready(self.last_answer + self.client.retry_for - time.monotonic())
            except ServerUnreachable as e:
                self.errors.append(str(e))
                return list(pending)

    def _requests(self, attempt: int, resend: list):
        """The frames of one stream: those awaiting an answer, then new ones while this attempt is current; the
        first of them with ``stream_head``."""
        first = self.stream_head is not None
        for req in self._stream_requests(attempt, resend):
            if first:
                first = False
                req = _with_head(req, self.stream_head())
            yield req

    def _stream_requests(self, attempt: int, resend: list):
        pending, state = self._pending, self._state
        yield from resend
        while True:
            if self.max_in_flight and not self._wait_for_slot(attempt):
                return
            with self._pull:  # only the current attempt pulls from the source, one frame at a time
                with self._lock:
                    if state["owner"] != attempt or state["exhausted"]:
                        return
                try:  # reading and encoding the next frame: the answer loop runs meanwhile
                    rid, req = next(self._source)
                except StopIteration:
                    with self._lock:
                        state["exhausted"] = True
                    return
                except Exception as e:  # an input that cannot be read or encoded: stop sending
                    with self._lock:
                        state["error"], state["exhausted"] = e, True
                    return
                with self._lock:
                    if rid in pending:
                        raise StreamProtocolError(f"two frames with request_id {rid!r}")
                    pending[rid] = req
            yield req

    def _wait_for_slot(self, attempt: int) -> bool:
        """Wait (not holding ``_pull``: a new stream may start meanwhile) until fewer than ``max_in_flight`` frames
        await an answer; False when this attempt is no longer the current one."""
        pending, state = self._pending, self._state
        with self._answered:
            if len(pending) >= self.max_in_flight and self.on_blocked is not None:
                self.on_blocked()
            while len(pending) >= self.max_in_flight:
                if state["owner"] != attempt or state["exhausted"]:
                    return False
                self._answered.wait(0.05)
            return state["owner"] == attempt

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
                on_answer(resp.request_id, resp)
                with self._lock:  # the frame's slot is free once its answer was handled (the next frame sees it)
                    self._pending.pop(resp.request_id)
                    self.last_answer = time.monotonic()
                    self.answers += 1
                    self._answered.notify_all()
        except grpc.RpcError as e:
            if e.code() not in RETRYABLE + (grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
                                            grpc.StatusCode.UNKNOWN):
                raise
            return f"{e.code().name}: {e.details()}"
        finally:
            call.cancel()
        return None
