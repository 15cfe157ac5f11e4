"""The server's log: one line per request, client-controlled strings escaped, refusals rate-limited, and the
gRPC library's own per-call errors (a malformed message, a failed deserialization) shortened to one
rate-limited line without the traceback (``LibraryLogFilter``)."""

from __future__ import annotations

import json
import logging
import time

log = logging.getLogger("splitcodec.cloud")


def clean(value, limit: int = 64) -> str:
    """A client-controlled string made safe for a log line: escaped (no newlines, control or non-ASCII
    characters: ``\\n``, ``\\x00``, ``\\U0001f600``), at most ``limit`` bytes of escaped text — whatever the
    characters, so an astral-plane string costs no more than an ASCII one — with the characters cut noted."""
    s = str(value)
    out, used, kept = [], 0, 0
    for ch in s[:limit]:  # at most ``limit`` characters can fit in ``limit`` bytes
        esc = ch.encode("unicode_escape").decode("ascii").replace('"', '\\"')
        if used + len(esc) > limit:
            break
        out.append(esc)
        used, kept = used + len(esc), kept + 1
    return "".join(out) + (f"...(+{len(s) - kept})" if kept < len(s) else "")


class RateLimit:
    """At most ``per_s`` events a second (a one-second window); the rest are counted in ``suppressed``."""

    def __init__(self, per_s: int):
        self.per_s = per_s
        self._window, self._in_window, self.suppressed = 0, 0, 0

    def allow(self) -> bool:
        now = int(time.monotonic())
        if now != self._window:
            self._window, self._in_window = now, 0
        self._in_window += 1
        if self._in_window > self.per_s:
            self.suppressed += 1
            return False
        return True

    def take_suppressed(self) -> int:
        n, self.suppressed = self.suppressed, 0
        return n


class RequestLog:
    """One line per request (``key=value``, or JSON); rejected requests are rate-limited to
    ``max_rejects_per_s`` lines a second, the rest counted and reported on the next line."""

    def __init__(self, *, as_json: bool = False, max_rejects_per_s: int = 20):
        self.as_json = as_json
        self.rejects = RateLimit(max_rejects_per_s)

    @property
    def suppressed(self) -> int:
        return self.rejects.suppressed

    def __call__(self, req, status: str, resp=None, *, peer: str = "", reason: str = "") -> None:
        if status != "OK" and not self.rejects.allow():
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
        if self.rejects.suppressed:
            fields["suppressed_rejects"] = self.rejects.take_suppressed()
        if self.as_json:
            log.info("request", extra={"fields": fields})
        else:
            log.info(" ".join(f"{k}={v}" for k, v in fields.items()))


class JsonFormatter(logging.Formatter):
    """``--log-json``: every record one JSON object on one line — ``time`` (ISO 8601, UTC), ``level``,
    ``logger``, then a request's fields (``RequestLog``) or ``message``."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            out["exception"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(out)


def configure_logging(as_json: bool, stream) -> None:
    """The server's log handler: ``key=value`` text lines with a timestamp, or (``as_json``) one JSON object per
    line from the first line to the last (``JsonFormatter``)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(name)s %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


LIBRARY_LOGGERS = ("grpc._cython.cygrpc", "grpc._server", "grpc.aio._server", "grpc")


class LibraryLogFilter(logging.Filter):
    """The gRPC library logs a traceback for every call it cannot serve (a malformed protobuf message, a
    serializer error): a hostile client could fill the disk.  This filter keeps such records to one line
    (no traceback, at most ``max_chars``), at most ``per_s`` a second, and notes how many it dropped."""

    def __init__(self, per_s: int = 5, max_chars: int = 200):
        super().__init__()
        self.limit, self.max_chars = RateLimit(per_s), max_chars

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if not self.limit.allow():
            return False
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        record.msg, record.args = clean(text, self.max_chars), None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        dropped = self.limit.take_suppressed()
        if dropped:
            record.msg += f" [{dropped} similar lines suppressed]"
        return True


def quiet_library_logs(per_s: int = 5) -> LibraryLogFilter:
    """Install ``LibraryLogFilter`` on the gRPC library's loggers (idempotent); returns it."""
    for name in LIBRARY_LOGGERS:
        lg = logging.getLogger(name)
        for f in lg.filters:
            if isinstance(f, LibraryLogFilter):
                return f
    f = LibraryLogFilter(per_s)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).addFilter(f)
    return f
