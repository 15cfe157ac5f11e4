"""A bare HTTP/2 client for the reliability benchmark's hostile scenarios (loopback only).

gRPC's own clients cannot misbehave on purpose: they always finish a message, honour flow control, never
reset streams in a burst.  This speaks the frames directly (RFC 9113) so a scenario can hold a message
open one byte short of its end, open and reset streams as fast as a socket allows, send a compressed
message that inflates far beyond its size, or advertise a zero receive window and never read.

It answers the server's SETTINGS and PINGs (as any peer must), keeps the send windows the server grants,
and records what the server did on each stream: its response headers or trailers ending the stream
(``ended``), its ``grpc-status`` (``status``), a reset (``reset``), DATA received, and whether a GOAWAY came.
Header blocks are written as HPACK literals without indexing or Huffman coding (always valid); the client
advertises a zero-sized header table, so the server's ``grpc-status`` arrives as a literal and is read
without a full HPACK decoder (a Huffman-coded value reads as None).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x1, 0x2, 0x4
CANCEL = 0x8
MAX_FRAME = 16384  # every peer accepts frames this large (SETTINGS_MAX_FRAME_SIZE's floor)
DEFAULT_WINDOW = 65535


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _hpack_int(n: int) -> bytes:
    """An HPACK integer with a 7-bit prefix and the Huffman bit clear (RFC 7541 §5.1)."""
    if n < 127:
        return bytes([n])
    out, n = bytearray([127]), n - 127
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    return bytes(out + bytes([n]))


def header_block(fields) -> bytes:
    """``(name, value)`` pairs as literal header fields without indexing, new name (RFC 7541 §6.2.2)."""
    out = bytearray()
    for name, value in fields:
        n, v = name.encode(), value.encode()
        out += b"\x00" + _hpack_int(len(n)) + n + _hpack_int(len(v)) + v
    return bytes(out)


def grpc_message(payload: bytes, compressed: bool = False, declared: int | None = None) -> bytes:
    """A gRPC length-prefixed message; ``declared`` overrides the length the prefix states."""
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(payload) if declared is None else declared) + payload


def _literal_after(block: bytes, name: bytes) -> int | None:
    """The integer value of the literal field ``name`` in a header block (None if Huffman-coded)."""
    i = block.index(name) + len(name)
    if i >= len(block) or block[i] & 0x80 or block[i] >= 127:
        return None
    value = block[i + 1:i + 1 + block[i]]
    return int(value) if value.isdigit() else None


class RawConnection:
    """One HTTP/2 connection to ``address`` ("host:port").  ``window``: the receive window this client
    advertises per stream; with ``read=False`` it never grants more (a client that never reads); ``source``: the
    local address it connects from."""

    def __init__(self, address: str, *, window: int = DEFAULT_WINDOW, read: bool = True, timeout: float = 10.0,
                 source: str | None = None):
        host, port = address.rsplit(":", 1)
        # ``source``: the local address to connect from (127.0.0.2: another client than one on 127.0.0.1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(5.0)  # a send the server does not take for 5 s fails (the connection counts as closed)
        self.read = read
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self.conn_window, self.stream_initial = DEFAULT_WINDOW, DEFAULT_WINDOW
        self.windows: dict[int, int] = {}
        self.ended: dict[int, float] = {}  # stream -> when the server ended it (trailers / END_STREAM)
        self.reset: dict[int, int] = {}  # stream -> the server's RST_STREAM error code
        self.status: dict[int, int | None] = {}  # stream -> the grpc-status of its trailers
        self.data_bytes = 0
        self.goaway = False
        self.closed = False
        self._next = 1
        settings = b"".join(struct.pack(">HI", k, v) for k, v in (
            (SETTINGS_HEADER_TABLE_SIZE, 0), (SETTINGS_ENABLE_PUSH, 0), (SETTINGS_INITIAL_WINDOW_SIZE, window)))
        self._send(PREFACE + frame(SETTINGS, 0, 0, settings))
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # -- sending ---------------------------------------------------------------------------------------
    def _send(self, data: bytes) -> bool:
        try:
            with self._send_lock:
                self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def open(self, path: str, metadata=(), *, authority: str = "localhost", end_stream: bool = False) -> int:
        """Start a gRPC call (HEADERS); returns its stream id."""
        stream, self._next = self._next, self._next + 2
        with self._cond:
            self.windows[stream] = self.stream_initial
        fields = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
                  ("content-type", "application/grpc"), ("te", "trailers"), *metadata]
        self._send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream, header_block(fields)))
        return stream

    def rst(self, stream: int, code: int = CANCEL) -> None:
        self._send(frame(RST_STREAM, 0, stream, struct.pack(">I", code)))

    def done(self, stream: int) -> bool:
        return stream in self.ended or stream in self.reset or self.closed or self.goaway

    def send_data(self, stream: int, data: bytes, *, end_stream: bool = False, deadline: float | None = None) -> int:
        """Send ``data`` on ``stream`` as far as the server's windows allow before ``deadline``; stops when the
        server ends or resets the stream.  Returns the bytes sent."""
        sent, view = 0, memoryview(data)
        while sent < len(data):
            with self._cond:
                while not self.done(stream) and min(self.conn_window, self.windows.get(stream, 0)) <= 0:
                    left = None if deadline is None else deadline - time.time()
                    if left is not None and left <= 0:
                        return sent
                    self._cond.wait(0.05 if left is None else min(left, 0.05))
                if self.done(stream):
                    return sent
                n = min(MAX_FRAME, len(data) - sent, self.conn_window, self.windows[stream])
                self.conn_window -= n
                self.windows[stream] -= n
            last = end_stream and sent + n == len(data)
            if not self._send(frame(DATA, END_STREAM if last else 0, stream, bytes(view[sent:sent + n]))):
                return sent
            sent += n
        return sent

    # -- receiving -------------------------------------------------------------------------------------
    def _recv(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                if self.closed:
                    return None
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _read_loop(self) -> None:
        while True:
            head = self._recv(9)
            if head is None:
                break
            length = int.from_bytes(head[:3], "big")
            kind, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
            payload = self._recv(length) if length else b""
            if payload is None:
                break
            self._on_frame(kind, flags, stream, payload)
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _on_frame(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        with self._cond:
            if kind == SETTINGS and not flags & ACK:
                for i in range(0, len(payload) - 5, 6):
                    key, value = struct.unpack(">HI", payload[i:i + 6])
                    if key == SETTINGS_INITIAL_WINDOW_SIZE:
                        for s in self.windows:
                            self.windows[s] += value - self.stream_initial
                        self.stream_initial = value
                self._send(frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                self._send(frame(PING, ACK, 0, payload))
            elif kind == WINDOW_UPDATE:
                inc = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
                if stream == 0:
                    self.conn_window += inc
                elif stream in self.windows:
                    self.windows[stream] += inc
            elif kind in (HEADERS, DATA):
                if kind == DATA and payload:
                    self.data_bytes += len(payload)
                    if self.read:
                        inc = struct.pack(">I", len(payload))
                        self._send(frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, stream, inc))
                if flags & END_STREAM:
                    self.ended.setdefault(stream, time.time())
                if kind == HEADERS and b"grpc-status" in payload:
                    self.status[stream] = _literal_after(payload, b"grpc-status")
            elif kind == RST_STREAM:
                self.reset.setdefault(stream, int.from_bytes(payload[:4], "big"))
            elif kind == GOAWAY:
                self.goaway = True
            self._cond.notify_all()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._reader.join(timeout=5)
