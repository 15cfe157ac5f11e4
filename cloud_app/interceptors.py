"""What the server decides from a call's method and metadata alone, before any message is read.

``TokenGate``: a SplitInference call without the right bearer token is refused (UNAUTHENTICATED) at call
start.  The refusal is served by a streaming handler that never reads its request iterator, so a client
without the token cannot make the server buffer, decompress or parse a message (a unary handler would
read the whole request first).

``AnonymousStreamGate``: the health ``Watch`` and reflection streams answer without a token (load-balancer
probes, ``grpcurl``); each is bounded in number (RESOURCE_EXHAUSTED beyond ``max_streams``) and in
duration (it ends with DEADLINE_EXCEEDED after ``max_s``; a prober simply watches again).

``RequestGate``: health checks, open without a token, have their own small budget in all, per connection and
per client address, refused at once beyond it (RESOURCE_EXHAUSTED), and their request is read by the server
under a short deadline instead of by gRPC before the handler runs (the handler is served as a
request-streaming one, which starts at once): a message still incomplete after ``anonymous_message_deadline_s``
(a client that sends headers and one byte, and waits) is DEADLINE_EXCEEDED, a call that ends before its
message INVALID_ARGUMENT — either way the call, and its slot under ``--max-concurrent-rpcs``, ends.  A client
without a token cannot hold the slots other callers need.  SplitInference's own calls are not served this way:
a handler that starts at every call's start costs Python work for each stream a rapid-reset attacker opens
and resets (measured: the normal client's p99 beside 10 k resets/s went from 2.0× to 4.8× its baseline); a
call without the token is refused at its start by ``TokenGate`` instead.

``MessageGate``: a SplitInference message that does not parse is the caller's error, INVALID_ARGUMENT
with one rate-limited log line, not the library's UNKNOWN and its traceback.  Its deserializer hands the
handler a ``Malformed`` value instead of raising; a unary call is answered here, a stream by the servicer
(``context.read()`` returns the value).
"""

from __future__ import annotations

import asyncio
import inspect

import grpc
from google.protobuf.message import DecodeError

from splitcodec.wire import pb

from .admission import Abort, check_token

PROTECTED_PREFIX = "/" + pb.DESCRIPTOR.services_by_name["SplitInference"].full_name + "/"
ANONYMOUS_STREAMS = ("/grpc.health.v1.Health/Watch",
                     "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                     "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")


async def _refuse(code, message, on_refuse=None):
    async def behaviour(request_iterator, context):
        if on_refuse is not None:
            on_refuse(code, message, context)
        await context.abort(code, message)

    return grpc.stream_stream_rpc_method_handler(behaviour)  # never reads (or deserializes) the request


class Malformed:
    """A request whose bytes are not the method's message (what the parser said, bounded)."""

    __slots__ = ("message",)

    def __init__(self, error: Exception):
        self.message = f"malformed request message: {str(error)[:120] or type(error).__name__}"


def _tolerant(deserializer):
    def parse(data: bytes):
        try:
            return deserializer(data)
        except DecodeError as e:
            return Malformed(e)
    return parse


ANONYMOUS_UNARY = ("/grpc.health.v1.Health/Check",)


def _address(peer: str) -> str:
    """A peer ("ipv4:127.0.0.1:54321", "ipv6:[::1]:54321") without its port: the client's address."""
    return peer.rsplit(":", 1)[0]


class RequestGate(grpc.aio.ServerInterceptor):
    """Anonymous unary calls (``anonymous``) bounded in all, per connection and per address, their request read
    under a deadline (see the module docstring)."""

    def __init__(self, limits, anonymous=ANONYMOUS_UNARY):
        self.limits, self.anonymous = limits, frozenset(anonymous)
        self.open = 0
        self.per_peer: dict[str, int] = {}
        self.per_address: dict[str, int] = {}

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None or details.method not in self.anonymous:
            return handler
        return grpc.stream_unary_rpc_method_handler(self._reading(handler.unary_unary), handler.request_deserializer,
                                                    handler.response_serializer)

    def _reading(self, behaviour):
        gate, deadline = self, self.limits.anonymous_message_deadline_s

        async def call(request_iterator, context):
            peer = context.peer()
            refusal = gate._take(peer)
            if refusal:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
            try:
                try:
                    request = await asyncio.wait_for(context.read(), deadline)
                except asyncio.TimeoutError:
                    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                        f"the request message did not arrive within {deadline:g} s")
                if request is grpc.aio.EOF:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call ended before its request message")
                return await behaviour(request, context)
            finally:
                gate._give(peer)
        return call

    def _take(self, peer: str) -> str | None:
        """Count an anonymous call in, or say which bound refuses it."""
        address, limits = _address(peer), self.limits
        if self.open >= limits.max_anonymous_calls:
            return f"{self.open} health checks in progress (limit {limits.max_anonymous_calls})"
        if self.per_peer.get(peer, 0) >= limits.max_anonymous_calls_per_connection:
            return f"health checks in progress on this connection at their limit " \
                   f"({limits.max_anonymous_calls_per_connection})"
        if self.per_address.get(address, 0) >= limits.max_anonymous_calls_per_address:
            return f"health checks in progress from this address at their limit " \
                   f"({limits.max_anonymous_calls_per_address})"
        self.open += 1
        self.per_peer[peer] = self.per_peer.get(peer, 0) + 1
        self.per_address[address] = self.per_address.get(address, 0) + 1
        return None

    def _give(self, peer: str) -> None:
        self.open -= 1
        for counts, key in ((self.per_peer, peer), (self.per_address, _address(peer))):
            counts[key] -= 1
            if not counts[key]:
                del counts[key]


class MessageGate(grpc.aio.ServerInterceptor):
    """Malformed messages of the methods under ``prefix`` become INVALID_ARGUMENT (``on_refuse`` logs them)."""

    def __init__(self, prefix: str = PROTECTED_PREFIX, on_refuse=None):
        self.prefix, self.on_refuse = prefix, on_refuse

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or not details.method.startswith(self.prefix) or handler.request_deserializer is None:
            return handler
        parse = _tolerant(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(self._checked(handler.unary_unary), parse,
                                                       handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(handler.stream_stream, parse, handler.response_serializer)
        return handler

    def _checked(self, behaviour):
        async def call(request, context):
            if isinstance(request, Malformed):
                if self.on_refuse is not None:
                    self.on_refuse(grpc.StatusCode.INVALID_ARGUMENT, request.message, context)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            return await behaviour(request, context)
        return call


class TokenGate(grpc.aio.ServerInterceptor):
    """Bearer-token check on every call whose method starts with ``prefix``, before its message is read."""

    def __init__(self, token: str | None, prefix: str = PROTECTED_PREFIX, on_refuse=None):
        self.token, self.prefix, self.on_refuse = token, prefix, on_refuse

    async def intercept_service(self, continuation, details):
        if self.token is not None and details.method.startswith(self.prefix):
            try:
                check_token(details.invocation_metadata, self.token)
            except Abort as a:
                return await _refuse(a.code, a.message, self.on_refuse)
        return await continuation(details)


class AnonymousStreamGate(grpc.aio.ServerInterceptor):
    """At most ``max_streams`` open streams among ``methods``, each at most ``max_s`` seconds long."""

    def __init__(self, max_streams: int, max_s: float, methods=ANONYMOUS_STREAMS):
        self.max_streams, self.max_s, self.methods = max_streams, max_s, frozenset(methods)
        self.open = 0

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method not in self.methods:
            return handler
        if self.open >= self.max_streams:
            return await _refuse(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"{self.open} anonymous streams open (limit {self.max_streams})")
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(self._bounded(handler.unary_stream),
                                                        handler.request_deserializer, handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(self._bounded(handler.stream_stream),
                                                         handler.request_deserializer, handler.response_serializer)
        return handler

    def _bounded(self, behaviour):
        gate = self

        if inspect.isasyncgenfunction(behaviour):
            async def stream(request, context):
                gate.open += 1
                try:
                    async with asyncio.timeout(gate.max_s):
                        async for item in behaviour(request, context):
                            yield item
                except TimeoutError:
                    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, gate._expired())
                finally:
                    gate.open -= 1
            return stream

        async def call(request, context):
            gate.open += 1
            try:
                await asyncio.wait_for(behaviour(request, context), gate.max_s)
            except asyncio.TimeoutError:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, gate._expired())
            finally:
                gate.open -= 1
        return call

    def _expired(self) -> str:
        return f"anonymous streams last at most {self.max_s:g} s: watch again"
