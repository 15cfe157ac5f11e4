"""Decoding on a bounded thread pool, cheapest expected cost first (``DecodeScheduler``)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from concurrent import futures

import grpc

from .admission import Abort


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
