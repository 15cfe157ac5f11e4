"""The server's Prometheus metrics (``prometheus_client``), served on their own port, off by default
(``--metrics-port``): what an operator watches without reading logs.

===================================  =========  ==============================================================
metric                               type       labels, what
===================================  =========  ==============================================================
``splitcodec_requests_total``        counter    ``method`` (Infer, InferStream), ``status`` (OK or the status
                                                code name): every frame answered or refused
``splitcodec_refusals_total``        counter    ``reason``: the status code of each refused frame or call
                                                (a bounded set: never the client's strings)
``splitcodec_stage_seconds``         histogram  ``stage``: ``queue`` (waiting for a batch), ``decode``, ``tail``,
                                                ``total`` (admission to answer) of each answered frame
``splitcodec_bitstream_bytes_total`` counter    bytes of the bitstreams answered
``splitcodec_batch_size``            histogram  frames that shared each answered frame's tail pass
``splitcodec_sequences_held``        gauge      streams holding a reference frame (``--max-sequences``)
``splitcodec_requests_in_flight``    gauge      frames admitted and not yet answered
===================================  =========  ==============================================================

Each server has its own registry (tests run several in one process); nothing here reads a request's strings.
"""

from __future__ import annotations

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    """The metrics of one server; :meth:`answered` / :meth:`refused` are called once per frame."""

    def __init__(self, service):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.requests = Counter("splitcodec_requests", "Frames answered or refused, by method and status",
                                ["method", "status"], registry=r)
        self.refusals = Counter("splitcodec_refusals", "Frames or calls refused, by status", ["reason"], registry=r)
        self.stages = Histogram("splitcodec_stage_seconds", "Time of each answered frame by stage", ["stage"],
                                buckets=STAGE_BUCKETS, registry=r)
        self.bytes_in = Counter("splitcodec_bitstream_bytes", "Bytes of the bitstreams answered", registry=r)
        self.batch = Histogram("splitcodec_batch_size", "Frames that shared each answered frame's tail pass",
                               buckets=BATCH_BUCKETS, registry=r)
        Gauge("splitcodec_sequences_held", "Streams holding a reference frame", registry=r).set_function(
            lambda: service.sequences)
        Gauge("splitcodec_requests_in_flight", "Frames admitted and not yet answered", registry=r).set_function(
            lambda: service.inflight)
        self._http = None

    def answered(self, method: str, resp, total_s: float) -> None:
        t = resp.timings
        self.requests.labels(method, "OK").inc()
        for stage, seconds in (("queue", t.queue_ms / 1e3), ("decode", t.decode_ms / 1e3), ("tail", t.tail_ms / 1e3),
                               ("total", total_s)):
            self.stages.labels(stage).observe(seconds)
        self.bytes_in.inc(resp.bitstream_bytes)
        self.batch.observe(t.batch_size or 1)

    def refused(self, method: str, status: str) -> None:
        self.requests.labels(method, status).inc()
        if status != "CANCELLED":  # the client went away: not a refusal
            self.refusals.labels(status).inc()

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` (0: any free port) in a thread; returns the port."""
        from prometheus_client import start_http_server

        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        return self._http.server_port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
