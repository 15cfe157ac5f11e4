"""The gRPC client: deadlines on every call, retries with backoff when the server is unavailable."""

from __future__ import annotations

import time

import grpc

from . import rpc

RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


class ServerUnreachable(RuntimeError):
    pass


class EdgeClient:
    def __init__(self, server: str, *, token: str | None = None, tls_ca: bytes | None = None, timeout: float = 10.0,
                 retries: int = 3, backoff: float = 0.2, max_message_bytes: int = 16 << 20):
        opts = [("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes)]
        if tls_ca is not None:
            self.channel = grpc.secure_channel(server, grpc.ssl_channel_credentials(root_certificates=tls_ca), opts)
        else:
            self.channel = grpc.insecure_channel(server, opts)
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
